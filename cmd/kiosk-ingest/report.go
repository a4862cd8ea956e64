package main

import (
	"context"
	"io"
)

func runReport(ctx context.Context, args []string, stdout io.Writer) error {
	return usagef("report: not yet")
}
