package controller

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	raftv1 "github.com/raftlab/raftlab/operator/api/v1"
)

// The ports of a raft-kv member.
const (
	PeerPort   = 7000
	ClientPort = 8080
	AdminPort  = 9090
)

// Keys of the tokens Secret.
const (
	AdminTokenKey = "admin-token"
	PeerTokenKey  = "peer-token"
)

// FoundersAnnotation on the StatefulSet records the founding members, in
// the order of their ordinals. It is written once, at creation, and is the
// operator's memory of who founded (the pods' RAFT_KV_PEERS says the same).
const FoundersAnnotation = "storage.sys/founders"

// ManagedBy is the app.kubernetes.io/managed-by label of every object the
// operator makes (its informers watch only those).
const ManagedBy = "raft-operator"

// Labels of every object the operator makes for a cluster; the selector of
// its pods.
func Labels(rc *raftv1.RaftCluster) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "raft-kv",
		"app.kubernetes.io/instance":   rc.Name,
		"app.kubernetes.io/managed-by": ManagedBy,
	}
}

// SelectorString is Labels as a label selector.
func SelectorString(rc *raftv1.RaftCluster) string {
	l := Labels(rc)
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// PeerServiceName is the headless Service that gives each member its DNS
// name.
func PeerServiceName(rc *raftv1.RaftCluster) string { return rc.Name + "-peers" }

// ClientServiceName is the Service clients use.
func ClientServiceName(rc *raftv1.RaftCluster) string { return rc.Name }

// SecretName holds the admin and peer tokens.
func SecretName(rc *raftv1.RaftCluster) string { return rc.Name + "-tokens" }

// MemberID is the id of the member at ordinal i: its pod's name.
func MemberID(rc *raftv1.RaftCluster, i int) string { return fmt.Sprintf("%s-%d", rc.Name, i) }

// Ordinal is the ordinal of a member id of rc, or -1.
func Ordinal(rc *raftv1.RaftCluster, id string) int {
	rest, ok := strings.CutPrefix(id, rc.Name+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

// PeerHost is a member's stable DNS name through the headless Service.
func PeerHost(rc *raftv1.RaftCluster, id, clusterDomain string) string {
	return fmt.Sprintf("%s.%s.%s.svc.%s", id, PeerServiceName(rc), rc.Namespace, clusterDomain)
}

// DesiredVoters are the voters the spec asks for: the lowest ordinals that
// are not retired, spec.replicas of them.
func DesiredVoters(rc *raftv1.RaftCluster) []string {
	var out []string
	for i := 0; len(out) < int(rc.Spec.Replicas); i++ {
		id := MemberID(rc, i)
		if !slices.Contains(rc.Spec.RetiredMembers, id) {
			out = append(out, id)
		}
	}
	return out
}

// Quorum is a majority of n voters.
func Quorum(n int) int { return n/2 + 1 }

func int32p(v int32) *int32 { return &v }

// desiredStatefulSet is the StatefulSet of rc with replicas pods; founders
// go into every pod's RAFT_KV_PEERS (the pods share one template, and
// raft-kv --join-unless-peer makes the others join).
func desiredStatefulSet(rc *raftv1.RaftCluster, founders []string, replicas int32, clusterDomain string) *appsv1.StatefulSet {
	peers := make([]string, len(founders))
	for i, id := range founders {
		peers[i] = fmt.Sprintf("%s=%s:%d", id, PeerHost(rc, id, clusterDomain), PeerPort)
	}
	host := fmt.Sprintf("$(POD_NAME).%s.%s.svc.%s", PeerServiceName(rc), rc.Namespace, clusterDomain)
	secretEnv := func(name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: SecretName(rc)}, Key: key}}}
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "RAFT_KV_PEERS", Value: strings.Join(peers, ",")},
		{Name: "RAFT_KV_JOIN_UNLESS_PEER", Value: "true"},
		{Name: "RAFT_KV_DATA_DIR", Value: "/data"},
		{Name: "RAFT_KV_PEER_ADDR", Value: fmt.Sprintf(":%d", PeerPort)},
		{Name: "RAFT_KV_CLIENT_ADDR", Value: fmt.Sprintf(":%d", ClientPort)},
		{Name: "RAFT_KV_ADMIN_ADDR", Value: fmt.Sprintf(":%d", AdminPort)},
		{Name: "RAFT_KV_ADVERTISE_PEER", Value: fmt.Sprintf("%s:%d", host, PeerPort)},
		{Name: "RAFT_KV_ADVERTISE_CLIENT", Value: fmt.Sprintf("%s:%d", host, ClientPort)},
		{Name: "RAFT_KV_MODE", Value: string(rc.Spec.SafetyMode)},
		{Name: "RAFT_KV_ELECTION_TIMEOUT_MS", Value: strconv.Itoa(int(rc.Spec.ElectionTimeoutMs))},
		{Name: "RAFT_KV_HEARTBEAT_MS", Value: strconv.Itoa(int(rc.Spec.HeartbeatMs))},
		secretEnv("RAFT_KV_ADMIN_TOKEN", AdminTokenKey),
		secretEnv("RAFT_KV_PEER_TOKEN", PeerTokenKey),
	}
	if rc.Spec.SnapshotEntries > 0 {
		env = append(env, corev1.EnvVar{Name: "RAFT_KV_SNAPSHOT_ENTRIES", Value: strconv.FormatInt(rc.Spec.SnapshotEntries, 10)})
	}
	if rc.Spec.SnapshotInterval != nil {
		env = append(env, corev1.EnvVar{Name: "RAFT_KV_SNAPSHOT_INTERVAL", Value: rc.Spec.SnapshotInterval.Duration.String()})
	}
	probe := func(path string) *corev1.Probe {
		// Every field set, as the API server defaults it, so that the
		// template compares equal to the stored one (rollTemplate).
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(ClientPort), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds: 2, FailureThreshold: 3, TimeoutSeconds: 2, SuccessThreshold: 1}
	}
	size := rc.Spec.StorageSize
	if size.IsZero() {
		size = resource.MustParse("1Gi")
	}
	pullPolicy := rc.Spec.ImagePullPolicy
	if pullPolicy == "" {
		pullPolicy = corev1.PullIfNotPresent
	}
	// Time to hand leadership away on SIGTERM (raft-kv transfers before
	// stopping, within 3 election timeouts) and to sync.
	grace := int64(3*rc.Spec.ElectionTimeoutMs/1000 + 10)
	labels := Labels(rc)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: rc.Name, Namespace: rc.Namespace, Labels: labels,
			Annotations: map[string]string{FoundersAnnotation: strings.Join(founders, ",")}},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    int32p(replicas),
			ServiceName: PeerServiceName(rc),
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			// The founders must start together to elect a leader: a pod is
			// Ready only once it knows a leader, so OrderedReady would wait
			// for ever on the first.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			// A scale-in never deletes a volume: the operator removes a
			// member from the configuration before the StatefulSet shrinks,
			// and its data stays for inspection.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptrTo(true), RunAsUser: ptrTo(int64(65532)),
						RunAsGroup: ptrTo(int64(65532)), FSGroup: ptrTo(int64(65532))},
					Containers: []corev1.Container{{
						Name: "raft-kv", Image: rc.Spec.Image, ImagePullPolicy: pullPolicy,
						Env: env,
						Ports: []corev1.ContainerPort{
							{Name: "peer", ContainerPort: PeerPort}, {Name: "client", ContainerPort: ClientPort},
							{Name: "admin", ContainerPort: AdminPort},
						},
						// Hand leadership away while the pod still serves,
						// before SIGTERM (raft-kv also transfers on SIGTERM,
						// which covers a hook that failed).
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
							Exec: &corev1.ExecAction{Command: []string{"/raft-kv", "hand-off"}}}},
						ReadinessProbe: probe("/readyz"),
						LivenessProbe:  &corev1.Probe{ProbeHandler: probe("/healthz").ProbeHandler, PeriodSeconds: 5, FailureThreshold: 6, TimeoutSeconds: 3, SuccessThreshold: 1},
						VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptrTo(false), ReadOnlyRootFilesystem: ptrTo(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: labels},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: rc.Spec.StorageClassName,
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
				},
			}},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// desiredPeerService is the headless Service of the members' DNS names. It
// publishes members that are not ready: a member is ready only once it
// knows a leader, and it cannot learn one before its peers can reach it.
func desiredPeerService(rc *raftv1.RaftCluster) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: PeerServiceName(rc), Namespace: rc.Namespace, Labels: Labels(rc)},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true, Selector: Labels(rc),
			Ports: []corev1.ServicePort{
				{Name: "peer", Port: PeerPort, TargetPort: intstr.FromInt32(PeerPort)},
				{Name: "admin", Port: AdminPort, TargetPort: intstr.FromInt32(AdminPort)},
			},
		},
	}
}

// desiredClientService is the Service clients write and read through (any
// ready member serves linearizably; followers forward or redirect).
func desiredClientService(rc *raftv1.RaftCluster) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ClientServiceName(rc), Namespace: rc.Namespace, Labels: Labels(rc)},
		Spec: corev1.ServiceSpec{
			Selector: Labels(rc),
			Ports:    []corev1.ServicePort{{Name: "client", Port: ClientPort, TargetPort: intstr.FromInt32(ClientPort)}},
		},
	}
}

// desiredPDB keeps a quorum of the voters up through voluntary
// disruptions (drains, evictions).
func desiredPDB(rc *raftv1.RaftCluster, voters int) *policyv1.PodDisruptionBudget {
	min := intstr.FromInt32(int32(Quorum(voters)))
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: rc.Name, Namespace: rc.Namespace, Labels: Labels(rc)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &min,
			Selector:     &metav1.LabelSelector{MatchLabels: Labels(rc)},
		},
	}
}
