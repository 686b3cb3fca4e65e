package policies

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	rtmetrics "runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The built-ins' own _test.rego files pass.
func TestBuiltInRegoTests(t *testing.T) {
	files, err := BuiltInFiles()
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunTests(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 20 {
		t.Fatalf("only %d Rego tests ran", len(results))
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s: %s", r.Name, r.Detail)
		}
	}
	// Every policy has a test file beside it.
	for _, name := range BuiltInNames {
		if _, ok := files[strings.ReplaceAll(name, "-", "_")+"_test.rego"]; !ok {
			t.Errorf("policy %s has no _test.rego", name)
		}
	}
}

func builtinPolicies(t testing.TB) []Policy {
	t.Helper()
	ps, err := BuiltIns(DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func builtins(t testing.TB) *Evaluator {
	t.Helper()
	e, err := New(context.Background(), builtinPolicies(t), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func objectInput(t testing.TB, manifest []byte) (map[string]any, string) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal(manifest, &obj); err != nil {
		t.Fatal(err)
	}
	// A sample may be a whole input, for what the webhook adds besides the object (rolledBack).
	if whole, ok := obj["object"].(map[string]any); ok {
		kind, _ := whole["kind"].(string)
		return obj, kind
	}
	kind, _ := obj["kind"].(string)
	return map[string]any{"operation": "CREATE", "object": obj}, kind
}

// Every sample under testdata/<policy>/allowed passes that policy, every one under warned is admitted with a
// warning from it, and every one under denied breaks it (denied, where the policy denies by default). The samples are written as the webhook sees them:
// after the API server's defaults and rollout-guard's mutation.
func TestSamples(t *testing.T) {
	e := builtins(t)
	for _, name := range BuiltInNames {
		for _, verdict := range []string{"allowed", "warned", "denied"} {
			files, _ := filepath.Glob(filepath.Join("testdata", name, verdict, "*.yaml"))
			if len(files) == 0 && verdict != "warned" {
				t.Errorf("policy %s has no %s samples", name, verdict)
			}
			for _, f := range files {
				t.Run(name+"/"+verdict+"/"+filepath.Base(f), func(t *testing.T) {
					data, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					in, kind := objectInput(t, data)
					vs, err := e.Evaluate(context.Background(), in, kind)
					if err != nil {
						t.Fatal(err)
					}
					got := map[Enforcement][]Violation{}
					for _, v := range vs {
						if v.Policy == name {
							got[v.Enforcement] = append(got[v.Enforcement], v)
						}
					}
					switch verdict {
					case "allowed":
						if len(got) > 0 {
							t.Errorf("violations %+v", got)
						}
					case "warned":
						if len(got[Deny]) > 0 || len(got[Warn]) == 0 {
							t.Errorf("want warnings and no denial, got %+v", got)
						}
					case "denied":
						if len(got) == 0 || (DefaultSettings()[name].Enforcement == Deny && len(got[Deny]) == 0) {
							t.Errorf("no denial: %+v", got)
						}
					}
				})
			}
		}
	}
}

func TestEvaluateReportsFieldsAndEnforcement(t *testing.T) {
	e := builtins(t)
	in, kind := objectInput(t, []byte(`{"kind":"Deployment","spec":{"replicas":10,"revisionHistoryLimit":0,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"50%","maxUnavailable":"50%"}},
	  "template":{"spec":{"containers":[{"name":"web","image":"nginx:latest","readinessProbe":{"tcpSocket":{"port":80}}}]}}}}`))
	vs, err := e.Evaluate(context.Background(), in, kind)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Enforcement{}
	for _, v := range vs {
		got[v.Policy+" "+v.Field] = v.Enforcement
	}
	want := map[string]Enforcement{
		"surge-unavailable spec.strategy.rollingUpdate.maxUnavailable": Deny,
		"revision-history spec.revisionHistoryLimit":                   Deny,
		"image-pinned spec.template.spec.containers[0].image":          Warn,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: enforcement %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("violations %v, want %v", got, want)
	}
}

func TestCompileRejectsForbiddenAndBrokenModules(t *testing.T) {
	tests := []struct {
		name, module, want string
	}{
		{"syntax error", "package rollout_guard.bad\n\ndeny contains msg if {\n  msg := \n}\n", "bad.rego:5"},
		{"http.send", "package rollout_guard.bad\n\ndeny contains msg if {\n  r := http.send({\"method\": \"get\", \"url\": \"http://example.com\"})\n  msg := r.body\n}\n", "http.send"},
		{"net.lookup", "package rollout_guard.bad\n\ndeny contains msg if {\n  net.lookup_ip_addr(\"example.com\")\n  msg := \"x\"\n}\n", "net.lookup_ip_addr"},
		{"wrong package", "package other\n\ndeny contains \"x\" if { true }\n", "must declare package rollout_guard.bad"},
		{"no rules", "package rollout_guard.bad\n\nallow := true\n", "no deny or warn rule"},
		{"another policy's rules", "package rollout_guard.bad\n\ndeny contains msg if {\n  some msg in data.rollout_guard.surge_unavailable.deny\n}\n", "reads outside the policy's own package"},
		{"another policy's rules by import", "package rollout_guard.bad\n\nimport data.rollout_guard.surge_unavailable as other\n\ndeny contains msg if {\n  some msg in other.deny\n}\n", "reads outside the policy's own package"},
		{"the parameters of every policy", "package rollout_guard.bad\n\ndeny contains msg if {\n  msg := sprintf(\"%v\", [data])\n}\n", "reads outside the policy's own package"},
		{"strict: unused variable", "package rollout_guard.bad\n\ndeny contains \"x\" if {\n  some unused\n  input.a == 1\n}\n", "unused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(context.Background(), Policy{Name: "bad", Module: tt.module, Filename: "bad.rego", Settings: Settings{Enforcement: Deny}})
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a CompileError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// A policy that cannot be evaluated (a built-in error, its deadline) is never a silent allow, and never takes the
// other policies' verdicts with it: it yields its onError verdict, marked Failed, and the others' stand.
func TestEvaluateIsolatesFailingPolicies(t *testing.T) {
	failing := map[string]string{
		"to-number": "package rollout_guard.to_number\n\ndeny contains msg if {\n  x := to_number(input.object.metadata.annotations.size)\n  msg := sprintf(\"%v\", [x])\n}\n",
		"loops":     "package rollout_guard.loops\n\ndeny contains msg if {\n  n := count([x | some x in numbers.range(1, 100000000)])\n  msg := sprintf(\"%d\", [n])\n}\n",
	}
	team := Policy{Name: "team-label", Filename: "team.rego", Settings: Settings{Enforcement: Deny},
		Module: "package rollout_guard.team_label\n\ndeny contains \"metadata.labels.team is required\" if {\n  not input.object.metadata.labels.team\n}\n"}
	input := map[string]any{"object": map[string]any{"metadata": map[string]any{"name": "web", "annotations": map[string]any{"size": "large"}}}}
	tests := []struct {
		name, failing string
		settings      Settings
		builtIn       bool
		want          Enforcement
		wantText      string
	}{
		{"a RolloutPolicy with a built-in error warns by default", "to-number", Settings{Enforcement: Deny}, false, Warn, "onError: allow"},
		{"onError: deny applies its enforcement", "to-number", Settings{Enforcement: Deny, OnError: OnErrorDeny}, false, Deny, "onError: deny"},
		{"a built-in fails closed by default", "to-number", Settings{Enforcement: Deny}, true, Deny, "onError: deny"},
		{"failing closed never exceeds the policy's enforcement", "to-number", Settings{Enforcement: DryRun, OnError: OnErrorDeny}, false, DryRun, "onError: deny"},
		{"a deadline is a failure too", "loops", Settings{Enforcement: Deny}, false, Warn, "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := Policy{Name: tt.failing, Filename: tt.failing + ".rego", Module: failing[tt.failing], Settings: tt.settings, BuiltIn: tt.builtIn}
			e, err := New(context.Background(), []Policy{bad, team}, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 2; round++ { // the second time, a policy past its deadline is skipped
				got, err := e.Evaluate(context.Background(), input, "Deployment")
				if err != nil {
					t.Fatal(err)
				}
				var failed, others []Violation
				for _, v := range got {
					if v.Policy == tt.failing {
						failed = append(failed, v)
					} else {
						others = append(others, v)
					}
				}
				if len(failed) != 1 || !failed[0].Failed || failed[0].Enforcement != tt.want || !strings.Contains(failed[0].Message, tt.wantText) {
					t.Errorf("round %d: the failing policy gave %+v, want one Failed %s mentioning %q", round, failed, tt.want, tt.wantText)
				}
				if len(others) != 1 || others[0].Policy != "team-label" || others[0].Enforcement != Deny {
					t.Errorf("round %d: the other policy's verdict was lost: %+v", round, others)
				}
			}
			if _, skipped := e.skipped(tt.failing); skipped != (tt.failing == "loops") {
				t.Errorf("skipped = %v: only a policy past its deadline is skipped", skipped)
			}
		})
	}
}

// A set rebuilt because another policy changed keeps skipping a looping policy it runs unchanged, and gives a
// changed one a fresh start, also when it was built while the failing request still ran on the set before it (what
// the webhook's status writes cause).
func TestKeepSkippingAcrossRebuilds(t *testing.T) {
	loops := Policy{Name: "loops", Filename: "loops.rego", Settings: Settings{Enforcement: Deny},
		Module: "package rollout_guard.loops\n\ndeny contains msg if {\n  n := count([x | some x in numbers.range(1, 100000000)])\n  msg := sprintf(\"%d\", [n])\n}\n"}
	other := Policy{Name: "other", Filename: "other.rego", Settings: Settings{Enforcement: Deny},
		Module: "package rollout_guard.other\n\ndeny contains \"no\" if { false }\n"}
	q := NewQuarantine()
	build := func(ps ...Policy) *Evaluator {
		e, err := New(context.Background(), ps, 50*time.Millisecond, WithQuarantine(q))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	first := build(loops)
	rebuilt := build(loops, other)
	if _, err := first.Evaluate(context.Background(), map[string]any{"object": map[string]any{}}, "Deployment"); err != nil {
		t.Fatal(err)
	}
	if _, skipped := first.skipped("loops"); !skipped {
		t.Fatal("the looping policy is not skipped after its deadline")
	}
	if _, skipped := rebuilt.skipped("loops"); !skipped {
		t.Error("a rebuild for another policy gave the looping one a fresh start")
	}
	changed := loops
	changed.Module = strings.Replace(loops.Module, "100000000", "10", 1)
	fixed := build(changed, other)
	if _, skipped := fixed.skipped("loops"); skipped {
		t.Error("a changed policy is still skipped")
	}
}

// A policy that builds a huge value is stopped near its memory limit, as a looping one is at its deadline: it yields
// its onError verdict, the others' verdicts stand, and it is skipped for a while, so it costs one request its limit.
func TestMemoryLimitStopsAnEvaluation(t *testing.T) {
	hungry := Policy{Name: "hungry", Filename: "hungry.rego", Settings: Settings{Enforcement: Deny},
		Module: "package rollout_guard.hungry\n\ndeny contains msg if {\n  xs := [sprintf(\"item %d\", [x]) | some x in numbers.range(1, 100000000)]\n  msg := sprintf(\"%d\", [count(xs)])\n}\n"}
	team := Policy{Name: "team-label", Filename: "team.rego", Settings: Settings{Enforcement: Deny},
		Module: "package rollout_guard.team_label\n\ndeny contains \"metadata.labels.team is required\" if {\n  not input.object.metadata.labels.team\n}\n"}
	const limit = 16 << 20
	// a deadline this long would let the policy allocate gigabytes: only the memory limit stops it
	e, err := New(context.Background(), []Policy{hungry, team}, 20*time.Second, WithMemoryLimit(limit))
	if err != nil {
		t.Fatal(err)
	}
	input := map[string]any{"object": map[string]any{"metadata": map[string]any{"name": "web"}}}
	for round := 0; round < 2; round++ { // the second time, the policy is skipped
		before := allocated()
		start := time.Now()
		got, err := e.Evaluate(context.Background(), input, "Deployment")
		if err != nil {
			t.Fatal(err)
		}
		// the query over both policies stops, then the hungry one alone: twice the limit, and a tick's worth more
		a, took := allocated()-before, time.Since(start)
		t.Logf("round %d: allocated %d MiB in %s", round, a>>20, took)
		if a > 6*limit {
			t.Errorf("round %d: the evaluation allocated %d MiB with a limit of %d MiB", round, a>>20, limit>>20)
		}
		if took > 10*time.Second {
			t.Errorf("round %d: the evaluation took %s: the deadline stopped it, not the memory limit", round, took)
		}
		if len(got) != 2 || got[0].Policy != "hungry" || !got[0].Failed || got[0].Enforcement != Warn ||
			!strings.Contains(got[0].Message, "memory limit of 16 MiB") {
			t.Fatalf("round %d: got %+v, want the hungry policy's onError warning naming its memory limit", round, got)
		}
		if got[1].Policy != "team-label" || got[1].Enforcement != Deny {
			t.Errorf("round %d: the other policy's verdict was lost: %+v", round, got[1])
		}
	}
	if sk, skipped := e.skipped("hungry"); !skipped || !strings.Contains(sk.why, "memory limit") {
		t.Errorf("skip %+v, %v: a policy past its memory limit must be skipped, saying why", sk, skipped)
	}
}

func allocated() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// One policy cannot make an answer of megabytes: results and their text are capped.
func TestEvaluateCapsResults(t *testing.T) {
	p := Policy{Name: "flood", Filename: "flood.rego", Settings: Settings{Enforcement: Deny},
		Module: "package rollout_guard.flood\n\ndeny contains msg if {\n  some i in numbers.range(1, 1000)\n  msg := {\"msg\": sprintf(\"%d %s\", [i, concat(\"\", [\"x\" | some _ in numbers.range(1, 1500)])]), \"field\": \"spec\"}\n}\n"}
	e, err := New(context.Background(), []Policy{p}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Evaluate(context.Background(), map[string]any{"object": map[string]any{}}, "Deployment")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxResultsPerRule || Count(got) != 1000 {
		t.Fatalf("%d violations standing for %d, want %d read, standing for 1000", len(got), Count(got), maxResultsPerRule)
	}
	if sum := Summarize(got); !strings.Contains(sum[len(sum)-1], "... and 997 more like these") {
		t.Errorf("the summary does not count what was not read: %q", sum[len(sum)-1])
	}
	for _, v := range got {
		if len(v.Message) > maxFieldBytes {
			t.Fatalf("a message of %d bytes", len(v.Message))
		}
	}
}

func TestStringMessagesAndWarnRules(t *testing.T) {
	p := Policy{Name: "team-label", Filename: "team.rego", Settings: Settings{Enforcement: Deny},
		Module: "package rollout_guard.team_label\n\ndeny contains \"metadata.labels.team is required\" if {\n  not input.object.metadata.labels.team\n}\n\nwarn contains \"consider an owner label\" if {\n  not input.object.metadata.labels.owner\n}\n"}
	e, err := New(context.Background(), []Policy{p}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := e.Evaluate(context.Background(), map[string]any{"object": map[string]any{"metadata": map[string]any{}}}, "Deployment")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(vs)
	if len(vs) != 2 || vs[0].Enforcement != Warn || vs[0].Message != "consider an owner label" || vs[1].Enforcement != Deny {
		t.Errorf("violations %s", b)
	}
}

// A policy limited to some kinds is evaluated, and reported, only for them.
func TestPoliciesRunOnlyForTheirKinds(t *testing.T) {
	always := func(name string, kinds ...string) Policy {
		pkg := strings.ReplaceAll(name, "-", "_")
		return Policy{Name: name, Filename: name + ".rego", Kinds: kinds, Settings: Settings{Enforcement: Deny},
			Module: "package rollout_guard." + pkg + "\n\ndeny contains \"" + name + "\" if true\n"}
	}
	e, err := New(context.Background(), []Policy{always("everywhere"), always("sts-only", "StatefulSet"), always("sts-and-ds", "StatefulSet", "DaemonSet")}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for kind, want := range map[string][]string{
		"Deployment":  {"everywhere"},
		"StatefulSet": {"everywhere", "sts-and-ds", "sts-only"},
		"DaemonSet":   {"everywhere", "sts-and-ds"},
		"CronJob":     {"everywhere"},
	} {
		vs, err := e.Evaluate(context.Background(), map[string]any{"object": map[string]any{"kind": kind}}, kind)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.Policy)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: policies %v, want %v", kind, got, want)
		}
	}
}

// Rules of one package merge, so no policy may share a package with another or with the library.
func TestPoliciesCannotShareAPackage(t *testing.T) {
	builtins, err := BuiltIns(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, want string }{
		{"lib", "taken by the built-in library"},
		{"probes_required", "taken by policy probes-required"},
	} {
		p := Policy{Name: c.name, Filename: c.name + ".rego", Settings: Settings{Enforcement: Deny},
			Module: "package " + Package(c.name) + "\n\ndeny contains \"x\" if { input.object.kind == \"Nothing\" }\n"}
		_, err := New(context.Background(), append(slices.Clone(builtins), p), time.Second)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("policy %s beside the built-ins: %v, want %q", c.name, err, c.want)
		}
	}
}

// Parameters read in every place a policy may read them, `some x in ...` declarations included (ast.TransformRefs
// does not enter those: such a rule was silently never firing), whole or by path, known or missing.
func TestParametersReachEveryReference(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		params     map[string]any
		want       int
	}{
		{"some in a path", "some label in input.parameters.labels\n  not input.object.metadata.labels[label]", map[string]any{"labels": []any{"team", "owner"}}, 2},
		{"some in a call on the whole object", "some label in object.get(input.parameters, \"labels\", [])\n  not input.object.metadata.labels[label]", map[string]any{"labels": []any{"team"}}, 1},
		{"some k, v in", "some i, label in input.parameters.labels\n  i >= 0\n  not input.object.metadata.labels[label]", map[string]any{"labels": []any{"team"}}, 1},
		{"assigned first", "labels := input.parameters.labels\n  some label in labels\n  not input.object.metadata.labels[label]", map[string]any{"labels": []any{"team"}}, 1},
		{"a missing parameter", "some label in input.parameters.missing\n  label", map[string]any{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Policy{Name: "labels", Filename: "labels.rego", Settings: Settings{Enforcement: Deny, Parameters: tc.params},
				Module: "package rollout_guard.labels\n\ndeny contains msg if {\n  " + tc.body + "\n  msg := sprintf(\"%s is required\", [label])\n}\n"}
			e, err := New(context.Background(), []Policy{p}, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			vs, err := e.Evaluate(context.Background(), map[string]any{"object": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}}}}, "Deployment")
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != tc.want {
				t.Errorf("%d violations, want %d: %+v", len(vs), tc.want, vs)
			}
		})
	}
}
