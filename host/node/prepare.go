package node

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tarnfs/tarn/host/atomicfile"
	"io/fs"
	"os"

	"github.com/tarnfs/tarn/conf"
	"github.com/tarnfs/tarn/host/identity"
)

// Prepare makes what a node folder needs besides its profile, keeping
// whatever is there already: the node key, the grid secret (gridSecret, or
// a new random one when nil) and, for a client, the convergence secret. It
// is for code that builds node folders (tarn dev, tests); an existing
// secret that differs from gridSecret is an error, never replaced.
func Prepare(p *conf.Profile, gridSecret []byte) (*identity.Identity, error) {
	if err := os.MkdirAll(p.Node.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", p.Dir, err)
	}
	id, err := identity.Create(p.Node.StateDir)
	if errors.Is(err, identity.ErrExist) {
		id, err = identity.Load(p.Node.StateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", p.Dir, err)
	}
	if err := ensureSecret(p.Grid.SecretFile, gridSecret); err != nil {
		return nil, fmt.Errorf("prepare %s: grid secret: %w", p.Dir, err)
	}
	if p.Client.Enabled {
		if err := ensureSecret(p.Client.ConvergenceSecretFile, nil); err != nil {
			return nil, fmt.Errorf("prepare %s: convergence secret: %w", p.Dir, err)
		}
	}
	return id, nil
}

func ensureSecret(path string, want []byte) error {
	have, err := identity.LoadSecret(path)
	switch {
	case err == nil:
		if want != nil && !bytes.Equal(have, want) {
			return fmt.Errorf("%s holds another secret: refusing to replace it", path)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	case want != nil:
		return identity.WriteSecret(path, want)
	default:
		_, err := identity.CreateSecret(path)
		return err
	}
}

// WriteProfile checks p and writes it to its file, replacing what is
// there whole (temp file and rename).
func WriteProfile(p *conf.Profile) error {
	if err := p.Validate(); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		return err
	}
	return atomicfile.WriteFile(p.File, b.Bytes(), 0o644)
}
