package sender

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxMultiChild bounds one <CHILD> element of check_multi XML, like the
// classic send_multi, which gives up when the closing tag does not follow
// within 64 KiB.
const MaxMultiChild = 64 << 10

// ErrMultiNoChildren is returned when check_multi XML holds no child check.
var ErrMultiNoChildren = errors.New("no check_multi child checks found")

// MultiChild is one child check of check_multi's XML report.
type MultiChild struct {
	No          int
	Name        string
	ReturnCode  int
	Output      string
	Error       string
	Performance string
	PPlugin     string
	Runtime     time.Duration
}

// FormattedOutput is the output send_multi reports for the child: the
// output, then " [<error>]" when the child wrote to stderr, then, when it
// has performance data, "|<name>::<pplugin>::<perfdata>" (check_multi's
// multi-label convention; a perfdata label that starts with a single quote
// keeps the quote in front: "|'<name>::<pplugin>::label'=…").
func (c MultiChild) FormattedOutput() string {
	out := c.Output
	if c.Error != "" {
		out += " [" + c.Error + "]"
	}
	if c.Performance != "" {
		prefix := c.Name + "::" + c.PPlugin + "::"
		if rest, ok := strings.CutPrefix(c.Performance, "'"); ok {
			out += "|'" + prefix + rest
		} else {
			out += "|" + prefix + c.Performance
		}
	}
	return out
}

// ParseMulti parses check_multi's XML report (feed_passive, specification
// §6.2) and returns one result per <CHILD> whose <no> is not 0 (0 is
// check_multi itself), in input order, as service results of host: service
// from <name>, return code from <rc>, output per [MultiChild.FormattedOutput],
// start = now − <runtime>, finish = now, source send_multi.
//
// The parser is deliberately small and forgiving, because check_multi's
// XML is not always well formed (raw ampersands, an ISO-8859-1 declaration):
// it looks for <CHILD>…</CHILD> blocks and, inside each, for the first
// <tag>text</tag> of the fields it needs; everything else is ignored. XML
// entities are decoded (&lt; &gt; &amp; &quot; &apos; and numeric ones such
// as &#039; and &#124;); unknown entities are kept as written. A child
// without a closing tag within [MaxMultiChild] bytes, or with a missing or
// bad <no> or <rc>, is an error; so is input without any child check
// ([ErrMultiNoChildren]).
func ParseMulti(data []byte, host string, now time.Time) ([]Result, error) {
	children, err := ParseMultiChildren(data)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, c := range children {
		if c.No == 0 {
			continue
		}
		out = append(out, Result{
			Host: host, Service: c.Name, ReturnCode: c.ReturnCode, Output: c.FormattedOutput(),
			Start: now.Add(-c.Runtime), Finish: now, Source: SourceSendMulti,
		})
	}
	if len(out) == 0 {
		return nil, ErrMultiNoChildren
	}
	return out, nil
}

// ParseMultiChildren returns every <CHILD> of check_multi XML, including
// number 0. See [ParseMulti] for the rules.
func ParseMultiChildren(data []byte) ([]MultiChild, error) {
	const open, closeTag = "<CHILD>", "</CHILD>"
	s := string(data)
	var out []MultiChild
	for n := 1; ; n++ {
		i := strings.Index(s, open)
		if i < 0 {
			return out, nil
		}
		s = s[i+len(open):]
		j := strings.Index(s, closeTag)
		if j < 0 || j > MaxMultiChild {
			return nil, fmt.Errorf("check_multi child %d: no %s within %d bytes", n, closeTag, MaxMultiChild)
		}
		c, err := parseChild(s[:j])
		if err != nil {
			return nil, fmt.Errorf("check_multi child %d: %w", n, err)
		}
		out = append(out, c)
		s = s[j+len(closeTag):]
	}
}

func parseChild(body string) (MultiChild, error) {
	var c MultiChild
	no, ok := element(body, "no")
	if !ok {
		return c, errors.New("no <no> element")
	}
	var err error
	if c.No, err = strconv.Atoi(strings.TrimSpace(no)); err != nil {
		return c, fmt.Errorf("<no>%s</no>: not a number", no)
	}
	c.Name, _ = element(body, "name")
	c.Name = strings.TrimSpace(c.Name)
	if c.No == 0 {
		return c, nil
	}
	if c.Name == "" {
		return c, fmt.Errorf("child %d: empty <name>", c.No)
	}
	if strings.ContainsAny(c.Name, "\n\r\x00") {
		return c, fmt.Errorf("child %d: <name> contains a newline", c.No)
	}
	rc, ok := element(body, "rc")
	if !ok {
		return c, fmt.Errorf("child %d (%s): no <rc> element", c.No, c.Name)
	}
	if c.ReturnCode, err = strconv.Atoi(strings.TrimSpace(rc)); err != nil || c.ReturnCode < 0 || c.ReturnCode > 3 {
		return c, fmt.Errorf("child %d (%s): <rc>%s</rc> is not a return code 0..3", c.No, c.Name, rc)
	}
	c.Output, _ = element(body, "output")
	c.Output = strings.TrimRight(c.Output, "\r\n")
	c.Error, _ = element(body, "error")
	c.Error = strings.TrimSpace(c.Error)
	c.Performance, _ = element(body, "performance")
	c.Performance = strings.TrimSpace(c.Performance)
	c.PPlugin, _ = element(body, "pplugin")
	c.PPlugin = strings.TrimSpace(c.PPlugin)
	if rt, ok := element(body, "runtime"); ok && strings.TrimSpace(rt) != "" {
		sec, err := strconv.ParseFloat(strings.TrimSpace(rt), 64)
		if err != nil || sec < 0 || sec > 1e9 {
			return c, fmt.Errorf("child %d (%s): <runtime>%s</runtime> is not a number of seconds", c.No, c.Name, rt)
		}
		c.Runtime = time.Duration(sec * float64(time.Second))
	}
	return c, nil
}

// element returns the entity-decoded text of the first <tag>…</tag> in
// body, with CDATA sections taken literally.
func element(body, tag string) (string, bool) {
	open, closeTag := "<"+tag+">", "</"+tag+">"
	i := strings.Index(body, open)
	if i < 0 {
		if strings.Contains(body, "<"+tag+"/>") || strings.Contains(body, "<"+tag+" />") {
			return "", true
		}
		return "", false
	}
	rest := body[i+len(open):]
	j := strings.Index(rest, closeTag)
	if j < 0 {
		return "", false
	}
	text := rest[:j]
	if inner, ok := strings.CutPrefix(text, "<![CDATA["); ok {
		if k := strings.Index(inner, "]]>"); k >= 0 {
			return inner[:k], true
		}
	}
	return decodeEntities(text), true
}

// decodeEntities replaces XML character and entity references; anything
// it does not know is kept as written.
func decodeEntities(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, ';')
		if j < 0 || j > 12 {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		name := s[1:j]
		if r, ok := entity(name); ok {
			b.WriteString(r)
			s = s[j+1:]
			continue
		}
		b.WriteByte('&')
		s = s[1:]
	}
}

func entity(name string) (string, bool) {
	switch name {
	case "lt":
		return "<", true
	case "gt":
		return ">", true
	case "amp":
		return "&", true
	case "quot":
		return `"`, true
	case "apos":
		return "'", true
	}
	num, ok := strings.CutPrefix(name, "#")
	if !ok || num == "" {
		return "", false
	}
	base := 10
	if h, ok := strings.CutPrefix(num, "x"); ok {
		num, base = h, 16
	} else if h, ok := strings.CutPrefix(num, "X"); ok {
		num, base = h, 16
	}
	n, err := strconv.ParseUint(num, base, 32)
	if err != nil || n == 0 || n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF) {
		return "", false
	}
	return string(rune(n)), true
}
