// Package flagargs parses a command line whose flags may come before and
// after its positional arguments (`cmd FILE -db x` as well as
// `cmd -db x FILE`), which the flag package stops at the first of them.
// kioskctl and kiosk-ingest share it; each wraps the error in its own usage
// error.
package flagargs

import "flag"

// Parse parses args with fs and returns the positional arguments, in
// order. The error is fs.Parse's, unwrapped (flag.ErrHelp for -h).
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}
