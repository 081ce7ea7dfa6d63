// Package classicconf reads the configuration of classic Mod-Gearman: the
// key=value files mod_gearman_neb.conf and mod_gearman_worker.conf, the
// arguments of a Naemon broker_module line and command-line style arguments
// of the worker and the tools. The result is one typed [Config] that holds
// every option of the NEB module, the worker and send_gearman.
//
// # Syntax
//
// A file holds one key=value per line. Blank lines are skipped, and so are
// lines whose first non-blank character is '#'. Keys and values are trimmed
// of ASCII white space and keys match case-insensitively. A '#' later in a
// line is part of the value (classic C cut the line there): the value is kept
// and a warning naming file and line is added to [Config.Warnings]. A UTF-8
// byte order mark and CR line ends are tolerated.
//
// Broker-line arguments are split at single spaces, so values cannot contain
// spaces there. Command-line arguments lose their leading dashes and are
// written --key=value (or -r=0); a bare --flag enables a boolean option.
// Broker-line arguments accept the same forms, and so do files, as in
// classic C: a line may read --key=value, and a line that is a bare --flag
// enables a boolean option. A line without '=' and without leading dashes
// is still an error.
//
// List options (server, dupserver, the four group lists, restrict_path, the
// perfdata queue list) take comma lists and accumulate when repeated; empty
// entries are ignored and duplicates are dropped with a warning. Scalars are
// overridden by later occurrences. key and keyfile are one setting: the one
// given last wins.
//
// Option spellings follow the table of the compatibility specification,
// including all aliases of C and Go. Options spelled with '-' there
// (max-age, min-worker, max-worker, spawn-rate, idle-timeout, max-jobs,
// sink-rate, backgrounding-threshold, num-result-worker, retry-interval,
// debug-result) are also accepted with '_', because both spellings are
// found in the wild; options spelled with '_' are not accepted with '-'.
//
// The single-letter alias d is shared by daemon (worker) and delimiter
// (send_gearman), as in classic C: a boolean value or a bare -d sets daemon,
// any other value sets the delimiter.
//
// # Strictness
//
// Unlike classic Mod-Gearman, parsing is strict: an unknown key, a line
// without '=', an invalid boolean (C keeps the default), a non-number, a value
// out of range, a malformed server, export spec or group name is an error.
// Every error is an [*Error] naming the file ("broker line", "command line"),
// the 1-based line (or argument) number and the key. Parsing stops at the
// first error and nothing of the failed source is applied.
//
// # Includes
//
// config=, configfile= and include= read a file or, recursively and in name
// order, every file ending in .cfg or .conf below a directory. Relative paths
// are resolved against the directory of the including file; in [Parse],
// [ParseBrokerArgs] and [ParseArgs] against [Parser.Dir], by default the
// process working directory. Includes nest at most ten levels (a directory
// level counts as one); include cycles are errors. File access goes through
// [FileSystem], so tests and fuzzers can replace the operating system.
//
// # Use
//
// [ParseFile], [Parse], [ParseBrokerArgs] and [ParseArgs] parse one source
// on top of [Defaults]. A [Parser] merges several sources in order, for
// example the file named by the broker line, then the broker line itself,
// then command-line overrides. After parsing, apply the role's auto-defaults
// ([Config.ApplyNEBDefaults], [Config.ApplyWorkerDefaults],
// [Config.ApplySendGearmanDefaults]) and call [Config.Validate]; read the
// key with [Config.ResolveKey].
package classicconf
