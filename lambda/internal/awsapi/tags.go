package awsapi

import (
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TagMap turns EC2 tags into a map (a key given twice: the last wins).
func TagMap(tags []ec2types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// Tags turns a map into EC2 tags in key order (stable requests, readable
// tests), each value passed through fit (nil: as it is) so every caller keeps
// its own rule for values over EC2's limit.
func Tags(m map[string]string, fit func(string) string) []ec2types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]ec2types.Tag, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		if fit != nil {
			v = fit(v)
		}
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out
}
