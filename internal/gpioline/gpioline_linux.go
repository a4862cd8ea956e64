package gpioline

import (
	"fmt"

	"github.com/warthog618/go-gpiocdev"
)

// Find resolves s to a chip and an offset on this machine. A bare name is
// searched on every chip.
func (s Spec) Find() (chip string, offset int, err error) {
	switch {
	case s.Name == "":
		return s.Chip, s.Offset, nil
	case s.Chip == "":
		chip, offset, err = gpiocdev.FindLine(s.Name)
		if err != nil {
			return "", 0, fmt.Errorf("gpioline: no line named %s on any GPIO chip: %w", s.Name, err)
		}
		return chip, offset, nil
	}
	c, err := gpiocdev.NewChip(s.Chip)
	if err != nil {
		return "", 0, fmt.Errorf("gpioline: chip %s: %w", s.Chip, err)
	}
	defer c.Close()
	offset, err = c.FindLine(s.Name)
	if err != nil {
		return "", 0, fmt.Errorf("gpioline: no line named %s on %s: %w", s.Name, s.Chip, err)
	}
	return s.Chip, offset, nil
}
