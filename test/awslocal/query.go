package awslocal

import (
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
