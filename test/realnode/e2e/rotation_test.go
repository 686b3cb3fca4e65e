package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A forced rotation of the self-managed certificates (the Secret emptied: a new CA and serving certificate, the
// worst case) during a loop of kubectl applies: no apply fails and every object is mutated, while each webhook
// replica moves to the new certificate. The webhooks fail open, so a request the API server could not send for
// want of trust would not fail the apply: the mutation check catches it.
func TestApplyLoopSurvivesCertificateRotation(t *testing.T) {
	ns := namespace(t, "rotation")
	secret := releaseName + "-rollout-guard-webhook-tls"
	oldCA := jsonpath(t, "rollout-guard", "secret/"+secret, `{.data.ca\.crt}`)
	if oldCA == "" {
		t.Fatalf("Secret %s holds no CA", secret)
	}
	const minApplies, rotateAt = 200, 20
	var failed []string
	var newServing []byte
	var rotated time.Time
	began := time.Now()
	i := 0
	for ; i < minApplies || newServing == nil || !allServe(t, newServing); i++ {
		if time.Since(began) > 4*time.Minute {
			t.Fatalf("after %d applies and %s the webhook pods do not all serve the new certificate", i, time.Since(began).Round(time.Second))
		}
		if i == rotateAt {
			kubectl(t, "-n", "rollout-guard", "patch", "secret", secret, "--type=json", "-p", `[{"op":"replace","path":"/data","value":{}}]`)
			rotated = time.Now()
			t.Logf("emptied Secret %s at apply %d", secret, i)
		}
		if i > rotateAt && newServing == nil {
			if crt := jsonpath(t, "rollout-guard", "secret/"+secret, `{.data.tls\.crt}`); crt != "" {
				var err error
				if newServing, err = base64.StdEncoding.DecodeString(crt); err != nil {
					t.Fatal(err)
				}
				t.Logf("new certificates issued by apply %d, %s after the Secret was emptied", i, time.Since(rotated).Round(time.Second))
			}
		}
		if _, err := applyErr(t, ns, loopDeployment("rot", i)); err != nil {
			failed = append(failed, fmt.Sprintf("apply %d: %v", i, err))
		}
	}
	t.Logf("%d applies in %s; every webhook pod serves the new certificate %s after the Secret was emptied", i,
		time.Since(began).Round(time.Millisecond), time.Since(rotated).Round(time.Second))
	checkLoop(t, ns, failed, i)
	if newCA := jsonpath(t, "rollout-guard", "secret/"+secret, `{.data.ca\.crt}`); newCA == oldCA {
		t.Error("emptying the Secret did not make a new CA")
	}
	bundle := kubectl(t, "get", "mutatingwebhookconfigurations", "-l", "app.kubernetes.io/instance="+releaseName,
		"-o", "jsonpath={.items[0].webhooks[0].clientConfig.caBundle}")
	raw, err := base64.StdEncoding.DecodeString(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("the caBundle holds %d CAs, want the new one and the old one, not yet expired", n)
	}
}

// allServe reports whether every webhook pod presents want (PEM) as its serving certificate, dialled from the node.
func allServe(t *testing.T, want []byte) bool {
	ips := strings.Fields(kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", "app.kubernetes.io/component=webhook",
		"-o", "jsonpath={.items[*].status.podIP}"))
	if len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}).DialContext(ctx, "tcp", net.JoinHostPort(ip, "9443")) //nolint:gosec // reads the certificate, trusts nothing
		cancel()
		if err != nil {
			return false
		}
		served := conn.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw
		_ = conn.Close()
		if block, _ := pem.Decode(want); block == nil || !bytes.Equal(block.Bytes, served) {
			return false
		}
	}
	return true
}
