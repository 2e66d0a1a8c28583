package controller

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	v1 "github.com/raftlab/raftlab/operator/api/v1"
)

// The template the operator wants compares equal to the one a real API
// server stored (with its defaults filled in), so that rollTemplate does
// not patch it on every pass. testdata holds a StatefulSet and its
// RaftCluster as kube-apiserver v1.37.2 returned them.
func TestDesiredTemplateMatchesTheStoredOne(t *testing.T) {
	var sts appsv1.StatefulSet
	var rc v1.RaftCluster
	for f, into := range map[string]any{"testdata/statefulset-from-apiserver.json": &sts, "testdata/raftcluster.json": &rc} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	want := desiredStatefulSet(&rc, strings.Split(sts.Annotations[FoundersAnnotation], ","), *sts.Spec.Replicas, "cluster.local")
	if !equality.Semantic.DeepDerivative(want.Spec.Template, sts.Spec.Template) {
		t.Fatalf("the desired template differs from the stored one:\nwant %+v\nstored %+v", want.Spec.Template.Spec.Containers[0], sts.Spec.Template.Spec.Containers[0])
	}
}
