// Package nebe2e tests the broker module as the cores see it: built with
// -buildmode=c-shared for both layouts, loaded by a small C fake core
// (cmd/gearbridge-neb/testdata/fakecore.c) and by the real Nagios 4.4.6 from
// Debian, against a real gearmand.
package nebe2e
