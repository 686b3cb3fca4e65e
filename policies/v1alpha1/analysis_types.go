package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RolloutAnalysis judges every new revision of the workloads it applies to by Prometheus queries, while the revision
// rolls out and for a bake time after: a revision whose query breaches its threshold in failureLimit samples in a
// row is rolled back, as a stalled one is; a revision is known-good only once its bake time passed with every query
// passing. Missing data (Prometheus down, no samples, too little traffic) is inconclusive: never a rollback, never a
// known-good mark. Platform teams write analyses; a workload opts in with the rollout-guard.io/analysis annotation,
// or an analysis selects workloads.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ra
// +kubebuilder:printcolumn:name="Interval",type=string,JSONPath=`.spec.interval`
// +kubebuilder:printcolumn:name="Failure-Limit",type=integer,JSONPath=`.spec.failureLimit`
// +kubebuilder:printcolumn:name="Bake",type=string,JSONPath=`.spec.bakeTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RolloutAnalysis struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec RolloutAnalysisSpec `json:"spec"`
}

// RolloutAnalysisSpec is what to query, how often, and what counts as a failure.
type RolloutAnalysisSpec struct {
	// Interval between two samples of each query (default 30s, at least 5s).
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// FailureLimit is how many failing samples in a row fail the analysis (default 2). An inconclusive sample
	// neither counts nor breaks the run; a passing one starts it again.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailureLimit int32 `json:"failureLimit,omitempty"`
	// BakeTime is how long after the rollout completes the analysis goes on before the revision is marked
	// known-good (default 5m; 0 marks it at the first passing sample after completion).
	// +optional
	BakeTime *metav1.Duration `json:"bakeTime,omitempty"`
	// Selector chooses workloads without an annotation. Empty: only workloads that name this analysis in their
	// rollout-guard.io/analysis annotation.
	// +optional
	Selector *AnalysisSelector `json:"selector,omitempty"`
	// Queries are judged together: the analysis fails when any query fails.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +listType=map
	// +listMapKey=name
	Queries []AnalysisQuery `json:"queries"`
}

// AnalysisSelector chooses the workloads an analysis applies to, by namespace labels, workload labels and kind. At
// least one of namespaceSelector and workloadSelector must be set, so that an analysis never covers every workload
// of the cluster by omission; an empty selector ({}) in one of them matches all, deliberately.
type AnalysisSelector struct {
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// +optional
	WorkloadSelector *metav1.LabelSelector `json:"workloadSelector,omitempty"`
	// Kinds limits the analysis to these workload kinds (all when empty).
	// +optional
	Kinds []WorkloadKind `json:"kinds,omitempty"`
}

// AnalysisQuery is one PromQL query and its thresholds. The query is a Go template over {{.Namespace}}, {{.Name}},
// {{.Kind}}, {{.Revision}}, {{.Pods}} (a regex of the new revision's pod names, safe inside a PromQL string) and
// {{.StablePods}} (the same for the stable revision); it must return one series or a scalar.
type AnalysisQuery struct {
	// Name is how Events, messages and metrics name the query.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	Name string `json:"name"`
	// Query is the PromQL template.
	// +kubebuilder:validation:MinLength=1
	Query string `json:"query"`
	// Max fails a sample above it; Min fails a sample below it. Numbers, as strings ("0.05").
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +optional
	Max string `json:"max,omitempty"`
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +optional
	Min string `json:"min,omitempty"`
	// MaxRatioToStable fails a sample above this multiple of the same query run over the stable revision's pods
	// ("2": twice the stable error rate). With max as well, a sample fails only when it breaks both, so that noise
	// at low values (0.1% against 0.05%) does not count. Needs {{.Pods}} in the query.
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +optional
	MaxRatioToStable string `json:"maxRatioToStable,omitempty"`
	// Traffic is a PromQL template for the request rate the sample stands on; below MinTraffic the sample is
	// inconclusive (an error rate over three requests proves nothing).
	// +optional
	Traffic string `json:"traffic,omitempty"`
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`
	// +optional
	MinTraffic string `json:"minTraffic,omitempty"`
}

// RolloutAnalysisList is a list of RolloutAnalyses.
//
// +kubebuilder:object:root=true
type RolloutAnalysisList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RolloutAnalysis `json:"items"`
}
