// Package modgearman is the classic Mod-Gearman payload codec: the key=value
// text of check jobs and check results, and the AES-256-ECB + base64
// envelope they travel in as Gearman workloads.
//
// It speaks the wire format of the C NEB module (mod_gearman 1.x–5.x), the C
// and Go workers and the send_gearman tools byte for byte, as described in
// the gearbridge compatibility specification (modgearman-wire.md, sections 2
// and 3). The package does no I/O: callers read key files and talk to
// gearmand themselves.
//
// # Envelope
//
// A [Codec] turns payload text into a workload and back. With encryption on,
// the text is zero-filled to ceil((len+1)/16)*16 bytes (so it always ends in
// at least one NUL, which C receivers treat as the end of the string),
// encrypted block by block with AES-256 in ECB mode under a [Key] that is the
// configured string zero-filled to 32 bytes, and encoded as standard base64
// with padding and without line breaks. With encryption off, the text is
// only base64 encoded.
//
// Decoding accepts everything the known senders produce: NUL padding (C, ≤4.x
// and the 5.x extra zero block), LF padding (Go worker), 32-byte padding and
// 76-column line wrapping (Perl client), and missing or wrong '=' padding.
// There is no MAC in this format, so a wrong key is detected only by the
// decrypted text not looking like key=value lines; see [ErrNotPayload].
//
// # Payloads
//
// [Job] is what the NEB sends to workers (host and service checks, event
// handlers, notifications); [Result] is what workers and send_gearman send
// back. Both parse leniently where the classic parsers do (unknown keys are
// kept, any key order is accepted, parsing stops at the first empty line) and
// strictly where a silent default would hide a bug (bad numbers and missing
// required keys are errors that name the key or line). Marshalling writes the
// exact key order and terminators of the classic senders.
//
// The only escape in values is for line feeds: a real LF is written as the two
// characters backslash and 'n' ([EscapeNewlines]); backslashes are never
// doubled. Values are otherwise passed raw, including CR and other control
// characters.
//
// Everything in this package is safe for concurrent use; there is no
// package-level mutable state.
package modgearman
