// Command kioskctl is the technician's tool: it talks to a running kioskd
// over its control socket, provisions kiosks and renders screens. See
// internal/kioskctl; on a kiosk, kioskctl is kioskd under another name.
package main

import (
	"os"

	"github.com/uitpas/tap-kiosk/internal/kioskctl"
)

var version = "dev"

func main() { os.Exit(kioskctl.Main(os.Args[1:], os.Stdout, os.Stderr, version)) }
