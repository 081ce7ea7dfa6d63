package modgearman

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
)

// Errors returned by [NewCodec] and the decoding methods of [Codec]. They are
// wrapped with context; test for them with errors.Is.
var (
	// ErrNoKey means encryption was requested without a key.
	ErrNoKey = errors.New("encryption is on but no key is configured")
	// ErrBase64 means the workload is not valid base64.
	ErrBase64 = errors.New("invalid base64")
	// ErrBlockSize means the decoded ciphertext is empty or its length is
	// not a multiple of the AES block size (16 bytes): the workload was
	// truncated or was never encrypted.
	ErrBlockSize = errors.New("ciphertext length is not a positive multiple of 16 bytes")
	// ErrNotPayload means the decoded text does not start with a key=value
	// line. With encryption on this almost always means that the sender
	// uses another key (the format has no MAC to tell for sure).
	ErrNotPayload = errors.New("wrong key or not a Mod-Gearman payload (check your encryption settings)")
)

// Codec encodes payload text into Gearman workloads and decodes them again,
// with or without encryption. A Codec is immutable and safe for concurrent
// use.
type Codec struct {
	block cipher.Block // nil when encryption is off
}

// NewCodec returns a codec for the configured secret key (see [NewKey] and
// [KeyFromFile]). With encrypt false (option encryption=no) the key is
// ignored and workloads are plain base64. With encrypt true an empty key is
// an error ([ErrNoKey]).
func NewCodec(key string, encrypt bool) (*Codec, error) {
	if !encrypt {
		return &Codec{}, nil
	}
	if key == "" {
		return nil, fmt.Errorf("new codec: %w", ErrNoKey)
	}
	k := NewKey(key)
	block, err := aes.NewCipher(k[:])
	if err != nil { // unreachable: the key is always 32 bytes
		return nil, fmt.Errorf("new codec: %w", err)
	}
	return &Codec{block: block}, nil
}

// Encrypted reports whether the codec encrypts (encryption=yes).
func (c *Codec) Encrypted() bool { return c.block != nil }

// Encode returns the workload for payload text plain.
//
// With encryption on, plain is zero-filled to ceil((len+1)/16)*16 bytes —
// always at least one NUL, never a block more than needed (the ≤4.x rule,
// identical to 5.x except for the 5.x quirk lengths 0, 1, 3, 7, 31, 47, …;
// every known receiver accepts it) — then encrypted with AES-256-ECB. The
// result is standard base64 with '=' padding and no line breaks.
//
// With encryption off, the workload is the base64 of plain; no NUL is added.
func (c *Codec) Encode(plain []byte) []byte {
	data := plain
	if c.block != nil {
		data = make([]byte, (len(plain)/aes.BlockSize+1)*aes.BlockSize)
		copy(data, plain)
		c.encryptBlocks(data)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(data)))
	base64.StdEncoding.Encode(out, data)
	return out
}

// Decode returns the payload text carried by workload.
//
// The base64 may be wrapped (CR, LF, space and tab are ignored anywhere) and
// its '=' padding may be missing or wrong. With encryption on, the decoded
// bytes must be a positive multiple of 16 long ([ErrBlockSize]); the only
// exception mirrors the C receiver, which decodes '=' padding into extra
// zero bytes and cuts them off: up to two trailing zero bytes beyond a whole
// block are dropped.
//
// Padding is removed from the decrypted text: it ends at the first NUL (C
// senders). Without a NUL (Go-worker LF padding), trailing LFs cannot be told
// apart from the payload's own line ends, so a run of trailing LFs is
// shortened to one. Plain (unencrypted) text is returned up to the first NUL
// and is otherwise unchanged.
//
// The text must start with a key=value line whose key consists of lower-case
// ASCII letters, digits and '_' (as every Mod-Gearman payload does), or
// Decode fails with [ErrNotPayload]: this is how a wrong key shows.
func (c *Codec) Decode(workload []byte) ([]byte, error) {
	raw, err := decodeBase64(workload)
	if err != nil {
		return nil, err
	}
	return c.open(raw)
}

// DecodeRaw is [Codec.Decode] without the check that the text is key=value
// lines, for payloads that are not (perfdata templates, export JSON). A
// wrong key then goes unnoticed and yields garbage.
func (c *Codec) DecodeRaw(workload []byte) ([]byte, error) {
	raw, err := decodeBase64(workload)
	if err != nil {
		return nil, err
	}
	return c.unwrap(raw)
}

// DecodeAny is [Codec.Decode] with the NEB option accept_clear_results: when
// acceptClear is true and the codec encrypts, a workload whose plain base64
// decoding starts with "type=" is accepted as clear text (send_gearman with
// encryption=no, Go workers and passive dupserver copies; C-worker results,
// which start with "host_name=", are not recognised, as in the C NEB).
//
// The clear interpretation is tried first: ciphertext that happens to start
// with "type=" has a chance of 2⁻⁴⁰, while clear text that happens to decrypt
// into something payload-like is far more likely, so this order misreads
// fewer workloads than trying the key first.
func (c *Codec) DecodeAny(workload []byte, acceptClear bool) ([]byte, error) {
	raw, err := decodeBase64(workload)
	if err != nil {
		return nil, err
	}
	if acceptClear && c.block != nil && bytes.HasPrefix(raw, []byte("type=")) {
		return cutAtNUL(raw), nil
	}
	return c.open(raw)
}

// open unwraps decoded base64 and checks that the text is a payload.
func (c *Codec) open(raw []byte) ([]byte, error) {
	plain, err := c.unwrap(raw)
	if err != nil {
		return nil, err
	}
	if !looksLikePayload(plain) {
		return nil, fmt.Errorf("decode workload (%d bytes of text): %w", len(plain), ErrNotPayload)
	}
	return plain, nil
}

// unwrap decrypts decoded base64 (modifying it) and strips the padding.
func (c *Codec) unwrap(raw []byte) ([]byte, error) {
	if c.block == nil {
		return cutAtNUL(raw), nil
	}
	return c.decrypt(raw)
}

func (c *Codec) encryptBlocks(data []byte) {
	for i := 0; i < len(data); i += aes.BlockSize {
		c.block.Encrypt(data[i:i+aes.BlockSize], data[i:i+aes.BlockSize])
	}
}

// decrypt decrypts raw in ECB mode and strips the padding. raw is modified.
func (c *Codec) decrypt(raw []byte) ([]byte, error) {
	n := len(raw)
	if rem := n % aes.BlockSize; rem != 0 {
		// C's EVP_DecodeBlock turns '=' padding into up to two extra zero
		// bytes and mod_gm_decrypt cuts the length down to whole blocks.
		if n < aes.BlockSize || rem > 2 || !allZero(raw[n-rem:]) {
			return nil, fmt.Errorf("decode workload: %w (got %d bytes)", ErrBlockSize, n)
		}
		raw = raw[:n-rem]
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("decode workload: %w (got 0 bytes)", ErrBlockSize)
	}
	for i := 0; i < len(raw); i += aes.BlockSize {
		c.block.Decrypt(raw[i:i+aes.BlockSize], raw[i:i+aes.BlockSize])
	}
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		return raw[:i], nil
	}
	// Go-worker padding: 1..15 LFs and no NUL.
	trimmed := bytes.TrimRight(raw, "\n")
	if len(trimmed) < len(raw) {
		return raw[:len(trimmed)+1], nil
	}
	return raw, nil
}

// decodeBase64 decodes standard base64, ignoring CR, LF, space and tab
// anywhere and tolerating missing or wrong '=' padding at the end.
func decodeBase64(workload []byte) ([]byte, error) {
	clean := make([]byte, 0, len(workload))
	for _, b := range workload {
		switch b {
		case '\r', '\n', ' ', '\t':
		default:
			clean = append(clean, b)
		}
	}
	clean = bytes.TrimRight(clean, "=")
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("decode workload: %w: %w", ErrBase64, err)
	}
	return out[:n], nil
}

// looksLikePayload reports whether text starts with "key=" where key is
// non-empty and made of lower-case ASCII letters, digits and '_'. Random
// bytes (a wrong key) pass this with a chance of well under 0.1%.
func looksLikePayload(text []byte) bool {
	for i, b := range text {
		switch {
		case b == '=':
			return i > 0
		case 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '_':
		default:
			return false
		}
	}
	return false
}

func cutAtNUL(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
