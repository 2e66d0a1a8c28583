// Package v1 is the storage.sys/v1 API of raftlab's operator: the
// RaftCluster resource.
//
// The spec says what the user wants (how many voters, which image, the
// safety mode, how fast membership may change); the status is the
// operator's cache of what it last observed through raft-kv's admin plane.
// The status is never the truth: every reconcile observes the cluster
// again, and the committed Raft configuration decides what happens next.
//
// +kubebuilder:object:generate=true
// +groupName=storage.sys
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the RaftCluster API.
	GroupVersion = schema.GroupVersion{Group: "storage.sys", Version: "v1"}

	// SchemeBuilder registers the API's types. It is apimachinery's, not
	// controller-runtime's (deprecated there: an API package should depend
	// on little more than apimachinery).
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers RaftCluster and RaftClusterList, and the meta
// types (ListOptions, ...) of the group version.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &RaftCluster{}, &RaftClusterList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
