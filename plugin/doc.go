// Package plugin runs one monitoring plugin (a Nagios/Naemon check, event
// handler or notification command) and turns what it did into a return code
// and an output text, the way a Mod-Gearman worker does.
//
// The package knows nothing about Gearman, gRPC or payload encoding: callers
// hand it a command line and [Options] and get a [Result] back. Behaviour
// follows the gearbridge compatibility specification (modgearman-wire.md
// §2.6, §4.3, §6.5 and the recommendations of §11), which makes the current
// Go worker the reference wherever the C and Go workers differ.
//
// # Command lines
//
// [Parse] decides how a command line is started. A line that a small
// shell-word splitter understands is executed directly, without a shell:
// words are separated by blanks (space and tab), single quotes and double
// quotes group and are removed, and leading NAME=value words become
// environment variables of the plugin. Any unquoted shell metacharacter
// (!$^&*()~[]\|{};<>?`, a backslash, a newline, a word starting with #),
// a double-quoted section containing $, ` or \, an unterminated quote, a
// command that is a shell keyword or built-in without a binary (exit, cd,
// if, ...) or a line made only of assignments sends the whole line to
// "/bin/sh -c" instead. The splitter never guesses: if it accepts a line, the
// shell would have produced the same words.
//
// # Processes and timeouts
//
// Each plugin runs in its own process group. When [Options.Timeout] passes or
// the context is cancelled, the whole group gets SIGTERM and, after
// [Options.KillGrace], SIGKILL; the group is swept with SIGKILL again once the
// plugin is gone, so forked helpers do not outlive it. Processes that leave
// the group (setsid, daemons) are out of reach of a process-group kill. When
// a plugin exits on its own but something it forked keeps stdout or stderr
// open, Run waits KillGrace for the pipes to close and then kills the group. Run therefore returns at the latest about Timeout + 2×KillGrace
// after it started.
//
// stdout and stderr are read through separate pipes into buffers that share
// a budget of [Options.MaxOutput] bytes. Output beyond the budget is read and
// thrown away so the plugin never blocks on a full pipe; the note
// "[output truncated to <limit> bytes, <n> bytes discarded]" is appended to
// the result text after a line feed.
//
// # Return codes and texts
//
// Return codes 0..3 are passed on. Everything else becomes 3 (UNKNOWN) with
// the Go worker's fixed texts (spec §2.6, "Fixed output texts"):
//
//	exit 126, EACCES   UNKNOWN: Return code of 126 is out of bounds. Make sure the plugin you're trying to run is executable. (worker: <id>)
//	exit 127, ENOENT   UNKNOWN: Return code of 127 is out of bounds. Make sure the plugin you're trying to run actually exists. (worker: <id>)
//	signal N           UNKNOWN: Return code of <N> is out of bounds. Plugin exited by signal: <SIGNAME>. (worker: <id>) + LF + output
//	other exit > 3     CRITICAL: Return code of <rc> is out of bounds. (worker: <id>) + LF + output
//	timeout            (Service Check Timed Out On Worker: <id>) + LF + partial output, rc = Options.TimeoutReturn
//
// (the last also as "Host Check" and, for other jobs, "Check"). A run ended
// by the caller's context gives return code 3 and gearbridge's own text
// "(Check Cancelled On Worker: <id>)" + LF + partial output, with
// [Result.Cancelled] set. The texts for 126 and 127 stand alone, as in the
// Go worker. The prefix "CRITICAL" with return code 3 for large exit codes is
// the Go worker's and kept on purpose.
//
// # Output assembly
//
// The plugin output is stdout with NUL bytes and white space trimmed from
// both ends. If [Options.ShowErrorOutput] is set and the plugin's own exit
// code is not 0 (a timeout or a signal counts as not 0), the trimmed stderr
// is appended as LF + "[" + stderr + "]", so a failing plugin that printed
// "out" and "err" yields "out\n[err]", and one that printed only "err" yields
// "[err]". This is the Go worker's rule; the C worker appended stderr for
// every exit code with a different layout. Output keeps real line feeds:
// escaping them for the wire is the payload codec's job.
//
// # Restricted paths and check_dummy
//
// With [Options.RestrictPath] set, a command must start with a clean absolute
// path below one of the listed directories and must not contain any of
// [Options.RestrictCommandCharacters] or a control character; otherwise
// the result is return code 3 with the Go worker's text "command contains
// bad path". With [Options.InternalCheckDummy] set, command lines that run
// check_dummy are answered without starting a process ([InternalDummy]).
//
// # negate and the worker name
//
// With [Options.InternalNegate], ".../negate [options] /path/plugin args"
// runs the plugin itself (the first argument starting with "/"; given as
// one quoted word it is split again) and applies negate's mapping: -o, -w,
// -c and -u name the state OK, WARNING, CRITICAL and UNKNOWN become (a name
// or 0..3; without any, OK and CRITICAL swap), -s replaces the first state
// word in the output, -t bounds the plugin (default 11 s, never above
// Options.Timeout) and -T sets the state of a timeout. Options are read as
// Go's flag package reads them, as the classic Go worker does; a line it
// cannot read runs the real negate. [Options.WorkerNameInResult] adds
// "(worker: <id>)" to the output of plugins that exited with 0..3.
//
// # Embedded Perl
//
// With [Options.Perl] set, Perl plugins that ask for it run in a persistent
// Perl server instead of a new perl process: see [Perl] for which plugins,
// and how the server keeps the guarantees above.
package plugin
