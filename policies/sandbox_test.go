package policies

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The attack from the hostile test: a policy whose JSON Schema $ref names a local listener or a local file. The
// policy must be refused when compiled, the listener never called and the file never read into any message.
func TestPoliciesCannotReachTheNetworkOrFiles(t *testing.T) {
	var hits atomic.Int32
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"type": "string", "description": "fetched"}`))
	}))
	defer listener.Close()
	secret := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(secret, []byte(`{"description": "the-local-secret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, builtin, ref string }{
		{"match_schema http", "json.match_schema", listener.URL + "/schema.json"},
		{"match_schema file", "json.match_schema", "file://" + secret},
		{"verify_schema http", "json.verify_schema", listener.URL + "/schema.json"},
		{"verify_schema file", "json.verify_schema", "file://" + secret},
	} {
		t.Run(c.name, func(t *testing.T) {
			call := fmt.Sprintf(`%s(input.object, {"$ref": %q})`, c.builtin, c.ref)
			if c.builtin == "json.verify_schema" {
				call = fmt.Sprintf(`%s({"$ref": %q})`, c.builtin, c.ref)
			}
			module := "package rollout_guard.escape\n\ndeny contains msg if {\n  r := " + call + "\n  msg := sprintf(\"%v\", [r])\n}\n"
			p := Policy{Name: "escape", Module: module, Filename: "escape.rego", Settings: Settings{Enforcement: Deny}}
			err := Check(context.Background(), p)
			var ce *CompileError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.builtin) {
				t.Errorf("a policy calling %s was not refused by name: %v", c.builtin, err)
			}
			if err != nil && strings.Contains(err.Error(), "the-local-secret") {
				t.Errorf("the local file's contents reached the error: %v", err)
			}
			if err == nil {
				// what the attack did: evaluate, and see what came out
				e, err := New(context.Background(), []Policy{p}, time.Second)
				if err != nil {
					t.Fatal(err)
				}
				vs, err := e.Evaluate(context.Background(), map[string]any{"object": map[string]any{"kind": "Deployment"}}, "Deployment")
				t.Errorf("evaluated: violations %+v, error %v", vs, err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the listener was called %d times by policies", n)
	}
	if caps := Capabilities(); caps.AllowNet == nil || len(caps.AllowNet) != 0 {
		t.Errorf("AllowNet = %v, want empty (nil allows every host)", caps.AllowNet)
	}
}
