package pluginkit

import (
	"os/exec"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestDataPlaneOff(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		off         bool
	}{
		{"unset", "", false},
		{"off", "off", true},
		{"OFF with spaces", " OFF ", true},
		{"zero", "0", true},
		{"false", "false", true},
		{"no", "no", true},
		{"on", "on", false},
		{"other", "tempfile", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvDataPlane, tc.value)
			if got := DataPlaneOff(); got != tc.off {
				t.Fatalf("%s=%q: DataPlaneOff() = %v, want %v", EnvDataPlane, tc.value, got, tc.off)
			}
		})
	}
}

// offerDataPlane adds the arena and the fd channel to the command only when
// the fast path is asked for, not turned off by TARN_DATAPLANE, and the
// system has a data plane.
func TestOfferDataPlane(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fast  bool
		env   string
		offer bool
	}{
		{"fast path", true, "", runtime.GOOS != "windows"},
		{"fast path off by env", true, "off", false},
		{"not asked", false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvDataPlane, tc.env)
			o := StartOptions{Kind: KindCodec, Name: "t", Cmd: exec.Command("true"),
				Logger: hclog.NewNullLogger(), FastPath: tc.fast, ArenaSize: 1 << 16}
			hdp, child, err := offerDataPlane(&o, "codec plugin \"t\"")
			if err != nil {
				t.Fatal(err)
			}
			if child != nil {
				child.Close()
			}
			if hdp.Arena != nil {
				defer hdp.Arena.Close()
			}
			if hdp.Mailbox != nil {
				defer hdp.Mailbox.Close()
			}
			offered := hdp.Arena != nil && hdp.Mailbox != nil && child != nil
			if offered != tc.offer {
				t.Fatalf("offered = %v, want %v", offered, tc.offer)
			}
			wantFiles, wantEnv := 0, 0
			if tc.offer {
				wantFiles, wantEnv = 2, 2
			}
			if len(o.Cmd.ExtraFiles) != wantFiles || len(o.Cmd.Env) != wantEnv {
				t.Fatalf("command got %d extra files and env %q, want %d and %d entries",
					len(o.Cmd.ExtraFiles), o.Cmd.Env, wantFiles, wantEnv)
			}
		})
	}
}
