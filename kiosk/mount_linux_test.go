package kiosk

import "golang.org/x/sys/unix"

func mountTmpfsRO(dir string) error {
	return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "size=1m")
}

func unmount(dir string) { unix.Unmount(dir, unix.MNT_DETACH) }
