package awslocal

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// members returns the list member prefixes "P.1", "P.2", … present in an EC2
// Query form, in index order. EC2 Query flattens lists as P.N (and nested
// structures as P.N.Field).
func members(form url.Values, prefix string) []string {
	seen := map[int]bool{}
	p := prefix + "."
	for k := range form {
		if !strings.HasPrefix(k, p) {
			continue
		}
		rest := k[len(p):]
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			rest = rest[:i]
		}
		if n, err := strconv.Atoi(rest); err == nil {
			seen[n] = true
		}
	}
	idx := make([]int, 0, len(seen))
	for n := range seen {
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = p + strconv.Itoa(n)
	}
	return out
}

// list returns the values of a flattened string list P.1, P.2, ….
func list(form url.Values, prefix string) []string {
	var out []string
	for _, m := range members(form, prefix) {
		out = append(out, form.Get(m))
	}
	return out
}

// tagList reads P.N.Key / P.N.Value pairs.
func tagList(form url.Values, prefix string) map[string]string {
	tags := map[string]string{}
	for _, m := range members(form, prefix) {
		if k := form.Get(m + ".Key"); k != "" {
			tags[k] = form.Get(m + ".Value")
		}
	}
	return tags
}

// filter is one EC2 Filter.N (Name, Value.M).
type filter struct {
	Name   string
	Values []string
}

func filters(form url.Values) []filter {
	var out []filter
	for _, m := range members(form, "Filter") {
		out = append(out, filter{Name: form.Get(m + ".Name"), Values: list(form, m+".Value")})
	}
	return out
}

// matchAny reports whether v matches one of the filter values; EC2 filter
// values allow * and ? wildcards.
func matchAny(values []string, v string) bool {
	for _, f := range values {
		if wildcard(f, v) {
			return true
		}
	}
	return false
}

func wildcard(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	// Simple backtracking matcher for * and ?.
	p, t := 0, 0
	star, mark := -1, 0
	for t < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[t]):
			p++
			t++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, t
			p++
		case star >= 0:
			p = star + 1
			mark++
			t = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchTagFilter handles tag:K, tag-key and tag-value filters; ok=false means
// the filter is not a tag filter.
func matchTagFilter(f filter, tags map[string]string) (match, ok bool) {
	switch {
	case strings.HasPrefix(f.Name, "tag:"):
		v, has := tags[strings.TrimPrefix(f.Name, "tag:")]
		return has && matchAny(f.Values, v), true
	case f.Name == "tag-key":
		for k := range tags {
			if matchAny(f.Values, k) {
				return true, true
			}
		}
		return false, true
	case f.Name == "tag-value":
		for _, v := range tags {
			if matchAny(f.Values, v) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

// page cuts items[offset:] to maxResults and returns the next token ("" at the end).
func page(n int, token string, maxResults int) (start, end int, next string) {
	if token != "" {
		if v, err := strconv.Atoi(strings.TrimPrefix(token, "tok-")); err == nil && v >= 0 && v <= n {
			start = v
		}
	}
	end = n
	if maxResults > 0 && start+maxResults < n {
		end = start + maxResults
		next = "tok-" + strconv.Itoa(end)
	}
	return start, end, next
}

// describeSpec is what sets one Describe* action apart: its ID list
// parameter and the error for an unknown ID, its resources in creation
// order, its filters by name (the tag filters are always known), and how one
// resource of T is written as X in the response.
type describeSpec[T comparable, X any] struct {
	idParam  string
	notFound func(id string) *APIError
	order    func() []string
	lookup   func(id string) T // the zero T when there is none
	tags     func(T) map[string]string
	fields   map[string]func(T) string
	keep     func(T) bool // a further condition; nil keeps all
	render   func(T) X
}

// describe does what every Describe* action does, under s.mu: EC2's
// MaxResults rule, refusal of an unknown filter name or ID, then one page of
// the resources that pass, in creation order, and the next page's token.
func describe[T comparable, X any](s *Server, form url.Values, d describeSpec[T, X]) (items []X, next string, e *APIError) {
	if e := checkMaxResults(form, d.idParam); e != nil {
		return nil, "", e
	}
	fs := filters(form)
	if e := checkFilters(fs, d.fields); e != nil {
		return nil, "", e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var none T
	ids := list(form, d.idParam)
	for _, id := range ids {
		if d.lookup(id) == none {
			return nil, "", d.notFound(id)
		}
	}
	var matched []T
	for _, id := range d.order() {
		r := d.lookup(id)
		if r == none || (len(ids) > 0 && !contains(ids, id)) || (d.keep != nil && !d.keep(r)) || !matchFilters(fs, d.tags(r), d.fields, r) {
			continue
		}
		matched = append(matched, r)
	}
	start, end, next := page(len(matched), form.Get("NextToken"), maxResults(form))
	for _, r := range matched[start:end] {
		items = append(items, d.render(r))
	}
	return items, next, nil
}

// checkFilters rejects filter names the action does not know, like EC2
// (tag:K, tag-key and tag-value are always known).
func checkFilters[T any](fs []filter, fields map[string]func(T) string) *APIError {
	for _, f := range fs {
		if _, known := fields[f.Name]; known || strings.HasPrefix(f.Name, "tag:") || f.Name == "tag-key" || f.Name == "tag-value" {
			continue
		}
		return &APIError{Code: "InvalidParameterValue", Message: fmt.Sprintf("The filter '%s' is invalid", f.Name)}
	}
	return nil
}

// matchFilters reports whether r passes every filter: a tag filter on its
// tags, any other on the value its field gives.
func matchFilters[T any](fs []filter, tags map[string]string, fields map[string]func(T) string, r T) bool {
	for _, f := range fs {
		if m, ok := matchTagFilter(f, tags); ok {
			if !m {
				return false
			}
			continue
		}
		field := fields[f.Name]
		if field == nil || !matchAny(f.Values, field(r)) {
			return false
		}
	}
	return true
}
