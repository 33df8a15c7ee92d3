package ssmdoc

import _ "embed"

//go:embed quiesce-clone.yaml
var cloneYAML []byte

// CloneDocument returns the YAML of the "QuiesceClone" Command document
// (hostagent clone on a target instance).
func CloneDocument() []byte { return append([]byte(nil), cloneYAML...) }

// Clone parses the clone document.
func Clone() (*Document, error) { return Load(cloneYAML) }
