package modgearman

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
)

// Uniq returns the unique id the NEB gives a job so that gearmand coalesces
// duplicates: the upper-case hex MD5 of parts joined with "-". Host checks
// use Uniq(host), service checks Uniq(host, service), perfdata
// Uniq(queue, host[, service]). The id is 32 characters, well within
// gearmand's 64-byte limit.
func Uniq(parts ...string) string {
	sum := md5.Sum([]byte(strings.Join(parts, "-")))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
