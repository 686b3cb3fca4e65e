package webhook

import (
	"encoding/json"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// Policies read input.userInfo; the hand-built map must be exactly the
// requester's JSON form.
func TestUserInfoIsItsJSONForm(t *testing.T) {
	for _, u := range []authenticationv1.UserInfo{
		{},
		{Username: "alice"},
		{Username: "system:serviceaccount:ci:deployer", UID: "u-1", Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		{Username: "bob", Extra: map[string]authenticationv1.ExtraValue{"scopes.example.com": {"read", "write"}, "empty": {}}},
	} {
		want, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(userInfo(u))
		if err != nil {
			t.Fatal(err)
		}
		var wantV, gotV any
		_ = json.Unmarshal(want, &wantV)
		_ = json.Unmarshal(got, &gotV)
		if string(mustJSON(t, wantV)) != string(mustJSON(t, gotV)) {
			t.Errorf("userInfo(%+v) = %s, want %s", u, got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		t.Fatal(err)
	}
	return b
}
