package mutate

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LastAppliedAnnotation is where client-side `kubectl apply` records the
// manifest the user applied.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Intent tells which fields the user wrote. The API server fills in its own
// defaults (maxSurge 25%, progressDeadlineSeconds 600, ...) before admission,
// so the object alone cannot tell "user wrote 25%" from "nobody did".
type Intent struct {
	// known is false when no record of the user's manifest exists (kubectl
	// create, replace, most API clients): a field equal to the API default is
	// then taken as unset.
	known       bool
	lastApplied map[string]any
	applied     []map[string]any
}

// IntentOf reads the user's intent from the object's metadata: the
// last-applied-configuration annotation of client-side apply and the Apply
// entries of managedFields written by server-side apply.
func IntentOf(meta metav1.Object) Intent {
	var in Intent
	if raw, ok := meta.GetAnnotations()[LastAppliedAnnotation]; ok {
		var m map[string]any
		if json.Unmarshal([]byte(raw), &m) == nil {
			in.known, in.lastApplied = true, m
		}
	}
	for _, mf := range meta.GetManagedFields() {
		if mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil {
			continue
		}
		var m map[string]any
		if json.Unmarshal(mf.FieldsV1.GetRawBytes(), &m) == nil {
			in.known = true
			in.applied = append(in.applied, m)
		}
	}
	return in
}

// Known reports whether any record of the user's manifest was found.
func (in Intent) Known() bool { return in.known }

// Wrote reports whether the user's manifest set the field at path (object
// keys from the top of the object, e.g. "spec", "strategy", "rollingUpdate", "maxSurge").
func (in Intent) Wrote(path ...string) bool {
	if lookup(in.lastApplied, path, func(k string) string { return k }) {
		return true
	}
	for _, set := range in.applied {
		if lookup(set, path, func(k string) string { return "f:" + k }) {
			return true
		}
	}
	return false
}

func lookup(m map[string]any, path []string, key func(string) string) bool {
	cur := m
	for i, p := range path {
		v, ok := cur[key(p)]
		if !ok {
			return false
		}
		if i == len(path)-1 {
			return true
		}
		if cur, ok = v.(map[string]any); !ok {
			return false
		}
	}
	return false
}
