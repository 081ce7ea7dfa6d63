//go:build tools

// Package tools pins the protobuf code generators used by `make proto` and
// nfpm, which `make deb` builds the Debian package with.
package tools

import (
	_ "github.com/goreleaser/nfpm/v2/cmd/nfpm"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
