package plugin

import "strings"

// Shell is the shell used for command lines Parse cannot split itself.
const Shell = "/bin/sh"

// shellMetacharacters make a command line go through the shell when they
// appear outside quotes (the list of spec §6.5 without the quotes, which
// Parse handles itself).
const shellMetacharacters = "!$^&*()~[]\\|{};<>?`\n"

// doubleQuoteSpecial keep a meaning for the shell inside double quotes.
const doubleQuoteSpecial = "$`\\"

// Parse splits commandLine the way Run starts it.
//
// If the line can be executed without a shell, useShell is false, argv holds
// the program and its arguments and env the leading NAME=value words. A line
// of blanks only gives nil, nil, false. Otherwise useShell is true, argv is
// {"/bin/sh", "-c", commandLine} and env is nil. The package documentation
// lists what makes a line need the shell.
func Parse(commandLine string) (argv, env []string, useShell bool) {
	words, ok := splitWords(commandLine)
	if !ok {
		return shellArgv(commandLine), nil, true
	}
	n := 0
	for n < len(words) && words[n].isAssignment() {
		n++
	}
	switch {
	case len(words) == 0:
		return nil, nil, false
	case n == len(words):
		// Only assignments: the shell sets variables and runs nothing.
		return shellArgv(commandLine), nil, true
	}
	cmd := words[n].text
	if !strings.Contains(cmd, "/") {
		if shellOnly(cmd) {
			return shellArgv(commandLine), nil, true
		}
		for _, w := range words[:n] {
			if w.text[:w.eq] == "PATH" {
				// The shell searches the command in the new PATH.
				return shellArgv(commandLine), nil, true
			}
		}
	}
	if n > 0 {
		env = make([]string, n)
		for i, w := range words[:n] {
			env[i] = w.text
		}
	}
	argv = make([]string, len(words)-n)
	for i, w := range words[n:] {
		argv[i] = w.text
	}
	return argv, env, false
}

func shellArgv(commandLine string) []string {
	return []string{Shell, "-c", commandLine}
}

// word is one shell word after quote removal.
type word struct {
	text string
	// eq is the index in text of the first '=' that appeared before any
	// quote, or -1.
	eq int
}

// isAssignment reports whether the shell would treat w as NAME=value.
func (w word) isAssignment() bool {
	return w.eq > 0 && validName(w.text[:w.eq])
}

// splitWords splits s into words. ok is false when s needs the shell.
func splitWords(s string) (words []word, ok bool) {
	var b strings.Builder
	inWord := false // a word has started (possibly as an empty quoted one)
	quoted := false // the current word contains a quoted section
	eq := -1
	endWord := func() {
		if inWord {
			words = append(words, word{text: b.String(), eq: eq})
		}
		b.Reset()
		inWord, quoted, eq = false, false, -1
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, false // unterminated: let the shell report it
			}
			section := s[i+1 : i+1+end]
			if c == '"' && strings.ContainsAny(section, doubleQuoteSpecial) {
				return nil, false
			}
			b.WriteString(section)
			i += end + 1
			inWord, quoted = true, true
		case c == '#' && !inWord:
			return nil, false // comment
		case strings.IndexByte(shellMetacharacters, c) >= 0:
			return nil, false
		default:
			if c == '=' && eq < 0 && !quoted {
				eq = b.Len()
			}
			b.WriteByte(c)
			inWord = true
		}
	}
	endWord()
	return words, true
}

// validName reports whether s is a shell variable name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// shellOnly reports whether a command name is a shell keyword or a built-in
// that has no program of the same name, so only the shell can run it.
func shellOnly(name string) bool {
	switch name {
	case "case", "do", "done", "elif", "else", "esac", "fi", "for", "function",
		"if", "in", "select", "then", "time", "until", "while",
		".", ":", "alias", "bg", "break", "cd", "command", "continue",
		"declare", "eval", "exec", "exit", "export", "fg", "getopts", "hash",
		"jobs", "let", "local", "read", "readonly", "return", "set", "shift",
		"source", "times", "trap", "type", "typeset", "ulimit", "umask",
		"unalias", "unset", "wait":
		return true
	}
	return false
}
