//go:build !nagios4

package main

// cancelHonoured: Naemon frees its check and keeps the schedule when the
// INITIATE callback returns CANCEL.
const cancelHonoured = true

const coreName = "Naemon"
