using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// Decodes the Kubernetes protobuf wire format (<c>application/vnd.kubernetes.protobuf</c>: the
/// "k8s\0" magic, a runtime.Unknown envelope, then the object) into the JSON form, for the request
/// bodies typed clients send (<c>kubectl create configmap|secret|namespace|deployment|service|serviceaccount|token</c>,
/// <c>kubectl auth can-i</c>).
/// The field tables below follow the upstream generated.proto field numbers for the fields those
/// clients set, and for the fields of the other served kinds (those are only type-checked in JSON
/// bodies, by <see cref="CheckJsonTypes"/>; their protobuf bodies are refused). Go's encoder writes
/// every non-pointer field, zero or not; a field this table does
/// not know is accepted only when it carries a zero value, anything else is refused with 415 and
/// the field named, so nothing is ever dropped silently. Zero scalars of non-pointer fields are left
/// out of the JSON (as Go's omitempty would); pointer fields keep an explicit zero (replicas: 0).
/// </summary>
public static class KubeProtobuf
{
    public const string ContentType = "application/vnd.kubernetes.protobuf";

    /// <summary>
    /// Field kinds. Inline: a Go embedded struct, a message field on the wire whose members sit
    /// beside the others in JSON. Quantity: a resource.Quantity (a message with one string on the
    /// wire, a string or a number in JSON).
    /// </summary>
    private enum K { String, Bytes, Int, Bool, Msg, Inline, MapString, MapBytes, MapQuantity, Strings, Msgs, Time, MicroTime, IntOrString, Quantity }

    private sealed record F(int Num, string Name, K Kind, string? Msg = null, bool Pointer = false)
    {
        /// <summary>The JSON name in UTF-8, for lookups in a parsed document.</summary>
        public byte[] Utf8 { get; } = Encoding.UTF8.GetBytes(Name);
    }

    private static readonly F Meta = new(1, "metadata", K.Msg, "ObjectMeta");

    private static readonly Dictionary<string, F[]> Schemas = new()
    {
        // k8s.io.apimachinery.pkg.apis.meta.v1
        ["ObjectMeta"] = [new(1, "name", K.String), new(2, "generateName", K.String), new(3, "namespace", K.String), new(5, "uid", K.String),
                          new(6, "resourceVersion", K.String), new(7, "generation", K.Int), new(8, "creationTimestamp", K.Time),
                          new(9, "deletionTimestamp", K.Time), new(10, "deletionGracePeriodSeconds", K.Int, Pointer: true), new(11, "labels", K.MapString),
                          new(12, "annotations", K.MapString), new(13, "ownerReferences", K.Msgs, "OwnerReference"), new(14, "finalizers", K.Strings),
                          new(17, "managedFields", K.Msgs, "ManagedFieldsEntry")],
        ["ManagedFieldsEntry"] = [new(1, "manager", K.String), new(2, "operation", K.String), new(3, "apiVersion", K.String), new(4, "time", K.Time),
                                  new(6, "fieldsType", K.String), new(7, "fieldsV1", K.Msg, "FieldsV1"), new(8, "subresource", K.String)],
        // On the wire FieldsV1 is its JSON in bytes (raw = 1), which is not decoded here; in JSON, any object.
        ["FieldsV1"] = [],
        ["OwnerReference"] = [new(1, "kind", K.String), new(3, "name", K.String), new(4, "uid", K.String), new(5, "apiVersion", K.String),
                              new(6, "controller", K.Bool, Pointer: true), new(7, "blockOwnerDeletion", K.Bool, Pointer: true)],
        ["LabelSelector"] = [new(1, "matchLabels", K.MapString), new(2, "matchExpressions", K.Msgs, "LabelSelectorRequirement")],
        ["LabelSelectorRequirement"] = [new(1, "key", K.String), new(2, "operator", K.String), new(3, "values", K.Strings)],
        // k8s.io.api.core.v1
        ["ConfigMap"] = [Meta, new(2, "data", K.MapString), new(3, "binaryData", K.MapBytes), new(4, "immutable", K.Bool, Pointer: true)],
        ["Secret"] = [Meta, new(2, "data", K.MapBytes), new(3, "type", K.String), new(4, "stringData", K.MapString), new(5, "immutable", K.Bool, Pointer: true)],
        ["Namespace"] = [Meta, new(2, "spec", K.Msg, "NamespaceSpec"), new(3, "status", K.Msg, "NamespaceStatus")],
        ["NamespaceSpec"] = [new(1, "finalizers", K.Strings)],
        ["NamespaceStatus"] = [new(1, "phase", K.String)],
        ["ServiceAccount"] = [Meta, new(2, "secrets", K.Msgs, "ObjectReference"), new(3, "imagePullSecrets", K.Msgs, "LocalObjectReference"),
                              new(4, "automountServiceAccountToken", K.Bool, Pointer: true)],
        ["ObjectReference"] = [new(1, "kind", K.String), new(2, "namespace", K.String), new(3, "name", K.String), new(4, "uid", K.String),
                               new(5, "apiVersion", K.String), new(6, "resourceVersion", K.String), new(7, "fieldPath", K.String)],
        ["LocalObjectReference"] = [new(1, "name", K.String)],
        ["Node"] = [Meta, new(2, "spec", K.Msg, "NodeSpec"), new(3, "status", K.Msg, "NodeStatus")],
        ["NodeSpec"] = [new(1, "podCIDR", K.String), new(2, "externalID", K.String), new(3, "providerID", K.String), new(4, "unschedulable", K.Bool),
                        new(5, "taints", K.Msgs, "Taint"), new(7, "podCIDRs", K.Strings)],
        ["Taint"] = [new(1, "key", K.String), new(2, "value", K.String), new(3, "effect", K.String), new(4, "timeAdded", K.Time)],
        ["NodeStatus"] = [new(1, "capacity", K.MapQuantity), new(2, "allocatable", K.MapQuantity), new(3, "phase", K.String),
                          new(4, "conditions", K.Msgs, "NodeCondition"), new(5, "addresses", K.Msgs, "NodeAddress"),
                          new(6, "daemonEndpoints", K.Msg, "NodeDaemonEndpoints"), new(7, "nodeInfo", K.Msg, "NodeSystemInfo"), new(9, "volumesInUse", K.Strings)],
        ["NodeCondition"] = [new(1, "type", K.String), new(2, "status", K.String), new(3, "lastHeartbeatTime", K.Time), new(4, "lastTransitionTime", K.Time),
                             new(5, "reason", K.String), new(6, "message", K.String)],
        ["NodeAddress"] = [new(1, "type", K.String), new(2, "address", K.String)],
        ["NodeDaemonEndpoints"] = [new(1, "kubeletEndpoint", K.Msg, "DaemonEndpoint")],
        ["DaemonEndpoint"] = [new(1, "Port", K.Int)],
        ["NodeSystemInfo"] = [new(1, "machineID", K.String), new(2, "systemUUID", K.String), new(3, "bootID", K.String), new(4, "kernelVersion", K.String),
                              new(5, "osImage", K.String), new(6, "containerRuntimeVersion", K.String), new(7, "kubeletVersion", K.String),
                              new(8, "kubeProxyVersion", K.String), new(9, "operatingSystem", K.String), new(10, "architecture", K.String)],
        ["Endpoints"] = [Meta, new(2, "subsets", K.Msgs, "EndpointSubset")],
        ["EndpointSubset"] = [new(1, "addresses", K.Msgs, "EndpointAddress"), new(2, "notReadyAddresses", K.Msgs, "EndpointAddress"),
                              new(3, "ports", K.Msgs, "CoreEndpointPort")],
        ["EndpointAddress"] = [new(1, "ip", K.String), new(2, "targetRef", K.Msg, "ObjectReference"), new(3, "hostname", K.String),
                               new(4, "nodeName", K.String, Pointer: true)],
        // core/v1 EndpointPort (discovery/v1 has its own EndpointPort, below).
        ["CoreEndpointPort"] = [new(1, "name", K.String), new(2, "port", K.Int), new(3, "protocol", K.String), new(4, "appProtocol", K.String, Pointer: true)],
        ["Event"] = [Meta, new(2, "involvedObject", K.Msg, "ObjectReference"), new(3, "reason", K.String), new(4, "message", K.String),
                     new(5, "source", K.Msg, "EventSource"), new(6, "firstTimestamp", K.Time), new(7, "lastTimestamp", K.Time), new(8, "count", K.Int),
                     new(9, "type", K.String), new(10, "eventTime", K.MicroTime), new(11, "series", K.Msg, "EventSeries"), new(12, "action", K.String),
                     new(13, "related", K.Msg, "ObjectReference"), new(14, "reportingComponent", K.String), new(15, "reportingInstance", K.String)],
        ["EventSource"] = [new(1, "component", K.String), new(2, "host", K.String)],
        ["EventSeries"] = [new(1, "count", K.Int), new(2, "lastObservedTime", K.MicroTime)],
        ["Service"] = [Meta, new(2, "spec", K.Msg, "ServiceSpec"), new(3, "status", K.Msg, "ServiceStatus")],
        ["ServiceSpec"] = [new(1, "ports", K.Msgs, "ServicePort"), new(2, "selector", K.MapString), new(3, "clusterIP", K.String), new(4, "type", K.String),
                           new(5, "externalIPs", K.Strings), new(7, "sessionAffinity", K.String), new(10, "externalName", K.String),
                           new(11, "externalTrafficPolicy", K.String), new(12, "healthCheckNodePort", K.Int), new(17, "ipFamilyPolicy", K.String, Pointer: true),
                           new(18, "clusterIPs", K.Strings), new(19, "ipFamilies", K.Strings), new(20, "allocateLoadBalancerNodePorts", K.Bool, Pointer: true),
                           new(21, "loadBalancerClass", K.String, Pointer: true), new(22, "internalTrafficPolicy", K.String, Pointer: true)],
        ["ServicePort"] = [new(1, "name", K.String), new(2, "protocol", K.String), new(3, "port", K.Int), new(4, "targetPort", K.IntOrString),
                           new(5, "nodePort", K.Int), new(6, "appProtocol", K.String, Pointer: true)],
        ["ServiceStatus"] = [new(1, "loadBalancer", K.Msg, "LoadBalancerStatus")],
        ["LoadBalancerStatus"] = [],
        ["PodTemplateSpec"] = [Meta, new(2, "spec", K.Msg, "PodSpec")],
        ["Pod"] = [Meta, new(2, "spec", K.Msg, "PodSpec"), new(3, "status", K.Msg, "PodStatus")],
        ["PodSpec"] = [new(1, "volumes", K.Msgs, "Volume"), new(2, "containers", K.Msgs, "Container"), new(3, "restartPolicy", K.String),
                       new(4, "terminationGracePeriodSeconds", K.Int, Pointer: true), new(5, "activeDeadlineSeconds", K.Int, Pointer: true),
                       new(6, "dnsPolicy", K.String), new(7, "nodeSelector", K.MapString), new(8, "serviceAccountName", K.String),
                       new(9, "serviceAccount", K.String), new(10, "nodeName", K.String), new(11, "hostNetwork", K.Bool), new(12, "hostPID", K.Bool),
                       new(13, "hostIPC", K.Bool), new(15, "imagePullSecrets", K.Msgs, "LocalObjectReference"), new(16, "hostname", K.String),
                       new(17, "subdomain", K.String), new(19, "schedulerName", K.String), new(20, "initContainers", K.Msgs, "Container"),
                       new(21, "automountServiceAccountToken", K.Bool, Pointer: true), new(22, "tolerations", K.Msgs, "Toleration"),
                       new(24, "priorityClassName", K.String), new(25, "priority", K.Int, Pointer: true), new(29, "runtimeClassName", K.String, Pointer: true),
                       new(30, "enableServiceLinks", K.Bool, Pointer: true), new(31, "preemptionPolicy", K.String, Pointer: true)],
        ["Toleration"] = [new(1, "key", K.String), new(2, "operator", K.String), new(3, "value", K.String), new(4, "effect", K.String),
                          new(5, "tolerationSeconds", K.Int, Pointer: true)],
        // Volume inlines VolumeSource (field 2 on the wire, its members beside "name" in JSON).
        ["Volume"] = [new(1, "name", K.String), new(2, "volumeSource", K.Inline, "VolumeSource")],
        ["VolumeSource"] = [new(1, "hostPath", K.Msg, "HostPathVolumeSource"), new(2, "emptyDir", K.Msg, "EmptyDirVolumeSource"),
                            new(6, "secret", K.Msg, "SecretVolumeSource"), new(10, "persistentVolumeClaim", K.Msg, "PersistentVolumeClaimVolumeSource"),
                            new(16, "downwardAPI", K.Msg, "DownwardAPIVolumeSource"), new(19, "configMap", K.Msg, "ConfigMapVolumeSource"),
                            new(26, "projected", K.Msg, "ProjectedVolumeSource")],
        ["HostPathVolumeSource"] = [new(1, "path", K.String), new(2, "type", K.String, Pointer: true)],
        ["EmptyDirVolumeSource"] = [new(1, "medium", K.String), new(2, "sizeLimit", K.Quantity, Pointer: true)],
        ["SecretVolumeSource"] = [new(1, "secretName", K.String), new(2, "items", K.Msgs, "KeyToPath"), new(3, "defaultMode", K.Int, Pointer: true),
                                  new(4, "optional", K.Bool, Pointer: true)],
        ["PersistentVolumeClaimVolumeSource"] = [new(1, "claimName", K.String), new(2, "readOnly", K.Bool)],
        ["DownwardAPIVolumeSource"] = [new(1, "items", K.Msgs, "DownwardAPIVolumeFile"), new(2, "defaultMode", K.Int, Pointer: true)],
        ["DownwardAPIVolumeFile"] = [new(1, "path", K.String), new(2, "fieldRef", K.Msg, "ObjectFieldSelector"),
                                     new(3, "resourceFieldRef", K.Msg, "ResourceFieldSelector"), new(4, "mode", K.Int, Pointer: true)],
        ["ObjectFieldSelector"] = [new(1, "apiVersion", K.String), new(2, "fieldPath", K.String)],
        ["ResourceFieldSelector"] = [new(1, "containerName", K.String), new(2, "resource", K.String), new(3, "divisor", K.Quantity)],
        // ConfigMapVolumeSource, ConfigMapProjection and SecretProjection inline LocalObjectReference ("name").
        ["ConfigMapVolumeSource"] = [new(1, "localObjectReference", K.Inline, "LocalObjectReference"), new(2, "items", K.Msgs, "KeyToPath"),
                                     new(3, "defaultMode", K.Int, Pointer: true), new(4, "optional", K.Bool, Pointer: true)],
        ["KeyToPath"] = [new(1, "key", K.String), new(2, "path", K.String), new(3, "mode", K.Int, Pointer: true)],
        ["ProjectedVolumeSource"] = [new(1, "sources", K.Msgs, "VolumeProjection"), new(2, "defaultMode", K.Int, Pointer: true)],
        ["VolumeProjection"] = [new(1, "secret", K.Msg, "SecretProjection"), new(2, "downwardAPI", K.Msg, "DownwardAPIProjection"),
                                new(3, "configMap", K.Msg, "ConfigMapProjection"), new(4, "serviceAccountToken", K.Msg, "ServiceAccountTokenProjection")],
        ["SecretProjection"] = [new(1, "localObjectReference", K.Inline, "LocalObjectReference"), new(2, "items", K.Msgs, "KeyToPath"),
                                new(4, "optional", K.Bool, Pointer: true)],
        ["ConfigMapProjection"] = [new(1, "localObjectReference", K.Inline, "LocalObjectReference"), new(2, "items", K.Msgs, "KeyToPath"),
                                   new(4, "optional", K.Bool, Pointer: true)],
        ["DownwardAPIProjection"] = [new(1, "items", K.Msgs, "DownwardAPIVolumeFile")],
        ["ServiceAccountTokenProjection"] = [new(1, "audience", K.String), new(2, "expirationSeconds", K.Int, Pointer: true), new(3, "path", K.String)],
        ["PodStatus"] = [new(1, "phase", K.String), new(2, "conditions", K.Msgs, "PodCondition"), new(3, "message", K.String), new(4, "reason", K.String),
                         new(5, "hostIP", K.String), new(6, "podIP", K.String), new(7, "startTime", K.Time), new(9, "qosClass", K.String),
                         new(11, "nominatedNodeName", K.String), new(12, "podIPs", K.Msgs, "PodIP")],
        ["PodCondition"] = [new(1, "type", K.String), new(2, "status", K.String), new(3, "lastProbeTime", K.Time), new(4, "lastTransitionTime", K.Time),
                            new(5, "reason", K.String), new(6, "message", K.String)],
        ["PodIP"] = [new(1, "ip", K.String)],
        ["Container"] = [new(1, "name", K.String), new(2, "image", K.String), new(3, "command", K.Strings), new(4, "args", K.Strings),
                         new(5, "workingDir", K.String), new(6, "ports", K.Msgs, "ContainerPort"), new(7, "env", K.Msgs, "EnvVar"),
                         new(8, "resources", K.Msg, "ResourceRequirements"), new(13, "terminationMessagePath", K.String),
                         new(14, "imagePullPolicy", K.String), new(16, "stdin", K.Bool), new(17, "stdinOnce", K.Bool), new(18, "tty", K.Bool),
                         new(20, "terminationMessagePolicy", K.String)],
        ["ContainerPort"] = [new(1, "name", K.String), new(2, "hostPort", K.Int), new(3, "containerPort", K.Int), new(4, "protocol", K.String), new(5, "hostIP", K.String)],
        ["EnvVar"] = [new(1, "name", K.String), new(2, "value", K.String)],
        ["ResourceRequirements"] = [new(1, "limits", K.MapQuantity), new(2, "requests", K.MapQuantity)],
        // k8s.io.api.authentication.v1 (kubectl create token)
        ["TokenRequest"] = [Meta, new(2, "spec", K.Msg, "TokenRequestSpec"), new(3, "status", K.Msg, "TokenRequestStatus")],
        ["TokenRequestSpec"] = [new(1, "audiences", K.Strings), new(3, "boundObjectRef", K.Msg, "BoundObjectReference"), new(4, "expirationSeconds", K.Int, Pointer: true)],
        ["BoundObjectReference"] = [new(1, "kind", K.String), new(2, "apiVersion", K.String), new(3, "name", K.String), new(4, "uid", K.String)],
        ["TokenRequestStatus"] = [new(1, "token", K.String), new(2, "expirationTimestamp", K.Time)],
        // k8s.io.api.authorization.v1 (kubectl auth can-i); subject extra (SubjectAccessReviewSpec 5) and the
        // selector requirements of ResourceAttributes (8, 9) are not known here and are refused when set.
        ["SelfSubjectAccessReview"] = [Meta, new(2, "spec", K.Msg, "SelfSubjectAccessReviewSpec"), new(3, "status", K.Msg, "SubjectAccessReviewStatus")],
        ["SelfSubjectAccessReviewSpec"] = [new(1, "resourceAttributes", K.Msg, "ResourceAttributes"), new(2, "nonResourceAttributes", K.Msg, "NonResourceAttributes")],
        ["SubjectAccessReview"] = [Meta, new(2, "spec", K.Msg, "SubjectAccessReviewSpec"), new(3, "status", K.Msg, "SubjectAccessReviewStatus")],
        ["LocalSubjectAccessReview"] = [Meta, new(2, "spec", K.Msg, "SubjectAccessReviewSpec"), new(3, "status", K.Msg, "SubjectAccessReviewStatus")],
        ["SubjectAccessReviewSpec"] = [new(1, "resourceAttributes", K.Msg, "ResourceAttributes"), new(2, "nonResourceAttributes", K.Msg, "NonResourceAttributes"),
                                       new(3, "user", K.String), new(4, "groups", K.Strings), new(6, "uid", K.String)],
        ["ResourceAttributes"] = [new(1, "namespace", K.String), new(2, "verb", K.String), new(3, "group", K.String), new(4, "version", K.String),
                                  new(5, "resource", K.String), new(6, "subresource", K.String), new(7, "name", K.String)],
        ["NonResourceAttributes"] = [new(1, "path", K.String), new(2, "verb", K.String)],
        ["SubjectAccessReviewStatus"] = [new(1, "allowed", K.Bool), new(2, "reason", K.String), new(3, "evaluationError", K.String), new(4, "denied", K.Bool)],
        ["SelfSubjectRulesReview"] = [Meta, new(2, "spec", K.Msg, "SelfSubjectRulesReviewSpec"), new(3, "status", K.Msg, "SubjectRulesReviewStatus")],
        ["SelfSubjectRulesReviewSpec"] = [new(1, "namespace", K.String)],
        ["SubjectRulesReviewStatus"] = [new(1, "resourceRules", K.Msgs, "ResourceRule"), new(2, "nonResourceRules", K.Msgs, "NonResourceRule"),
                                        new(3, "incomplete", K.Bool), new(4, "evaluationError", K.String)],
        ["ResourceRule"] = [new(1, "verbs", K.Strings), new(2, "apiGroups", K.Strings), new(3, "resources", K.Strings), new(4, "resourceNames", K.Strings)],
        ["NonResourceRule"] = [new(1, "verbs", K.Strings), new(2, "nonResourceURLs", K.Strings)],
        // k8s.io.api.apps.v1
        ["Deployment"] = [Meta, new(2, "spec", K.Msg, "DeploymentSpec"), new(3, "status", K.Msg, "DeploymentStatus")],
        ["DeploymentSpec"] = [new(1, "replicas", K.Int, Pointer: true), new(2, "selector", K.Msg, "LabelSelector"), new(3, "template", K.Msg, "PodTemplateSpec"),
                              new(4, "strategy", K.Msg, "DeploymentStrategy"), new(5, "minReadySeconds", K.Int),
                              new(6, "revisionHistoryLimit", K.Int, Pointer: true), new(7, "paused", K.Bool), new(9, "progressDeadlineSeconds", K.Int, Pointer: true)],
        ["DeploymentStrategy"] = [new(1, "type", K.String), new(2, "rollingUpdate", K.Msg, "RollingUpdateDeployment")],
        ["RollingUpdateDeployment"] = [new(1, "maxUnavailable", K.IntOrString), new(2, "maxSurge", K.IntOrString)],
        ["DeploymentStatus"] = [new(1, "observedGeneration", K.Int), new(2, "replicas", K.Int), new(3, "updatedReplicas", K.Int),
                                new(4, "availableReplicas", K.Int), new(5, "unavailableReplicas", K.Int), new(6, "conditions", K.Msgs, "DeploymentCondition"),
                                new(7, "readyReplicas", K.Int), new(8, "collisionCount", K.Int, Pointer: true)],
        ["DeploymentCondition"] = [new(1, "type", K.String), new(2, "status", K.String), new(4, "reason", K.String), new(5, "message", K.String),
                                   new(6, "lastUpdateTime", K.Time), new(7, "lastTransitionTime", K.Time)],
        ["ReplicaSet"] = [Meta, new(2, "spec", K.Msg, "ReplicaSetSpec"), new(3, "status", K.Msg, "ReplicaSetStatus")],
        ["ReplicaSetSpec"] = [new(1, "replicas", K.Int, Pointer: true), new(2, "selector", K.Msg, "LabelSelector"), new(3, "template", K.Msg, "PodTemplateSpec"),
                              new(4, "minReadySeconds", K.Int)],
        ["ReplicaSetStatus"] = [new(1, "replicas", K.Int), new(2, "fullyLabeledReplicas", K.Int), new(3, "observedGeneration", K.Int),
                                new(4, "readyReplicas", K.Int), new(5, "availableReplicas", K.Int), new(6, "conditions", K.Msgs, "ReplicaSetCondition")],
        ["ReplicaSetCondition"] = [new(1, "type", K.String), new(2, "status", K.String), new(3, "lastTransitionTime", K.Time), new(4, "reason", K.String),
                                   new(5, "message", K.String)],
        ["DaemonSet"] = [Meta, new(2, "spec", K.Msg, "DaemonSetSpec"), new(3, "status", K.Msg, "DaemonSetStatus")],
        ["DaemonSetSpec"] = [new(1, "selector", K.Msg, "LabelSelector"), new(2, "template", K.Msg, "PodTemplateSpec"),
                             new(3, "updateStrategy", K.Msg, "DaemonSetUpdateStrategy"), new(4, "minReadySeconds", K.Int),
                             new(6, "revisionHistoryLimit", K.Int, Pointer: true)],
        ["DaemonSetUpdateStrategy"] = [new(1, "type", K.String), new(2, "rollingUpdate", K.Msg, "RollingUpdateDaemonSet")],
        ["RollingUpdateDaemonSet"] = [new(1, "maxUnavailable", K.IntOrString), new(2, "maxSurge", K.IntOrString)],
        ["DaemonSetStatus"] = [new(1, "currentNumberScheduled", K.Int), new(2, "numberMisscheduled", K.Int), new(3, "desiredNumberScheduled", K.Int),
                               new(4, "numberReady", K.Int), new(5, "observedGeneration", K.Int), new(6, "updatedNumberScheduled", K.Int),
                               new(7, "numberAvailable", K.Int), new(8, "numberUnavailable", K.Int), new(9, "collisionCount", K.Int, Pointer: true),
                               new(10, "conditions", K.Msgs, "DaemonSetCondition")],
        ["DaemonSetCondition"] = [new(1, "type", K.String), new(2, "status", K.String), new(3, "lastTransitionTime", K.Time), new(4, "reason", K.String),
                                  new(5, "message", K.String)],
        // k8s.io.api.coordination.v1
        ["Lease"] = [Meta, new(2, "spec", K.Msg, "LeaseSpec")],
        ["LeaseSpec"] = [new(1, "holderIdentity", K.String, Pointer: true), new(2, "leaseDurationSeconds", K.Int, Pointer: true),
                         new(3, "acquireTime", K.MicroTime), new(4, "renewTime", K.MicroTime), new(5, "leaseTransitions", K.Int, Pointer: true)],
        // k8s.io.api.discovery.v1
        ["EndpointSlice"] = [Meta, new(2, "endpoints", K.Msgs, "Endpoint"), new(3, "ports", K.Msgs, "EndpointPort"), new(4, "addressType", K.String)],
        ["Endpoint"] = [new(1, "addresses", K.Strings), new(2, "conditions", K.Msg, "EndpointConditions"), new(3, "hostname", K.String, Pointer: true),
                        new(4, "targetRef", K.Msg, "ObjectReference"), new(5, "deprecatedTopology", K.MapString), new(6, "nodeName", K.String, Pointer: true),
                        new(7, "zone", K.String, Pointer: true), new(8, "hints", K.Msg, "EndpointHints")],
        ["EndpointConditions"] = [new(1, "ready", K.Bool, Pointer: true), new(2, "serving", K.Bool, Pointer: true), new(3, "terminating", K.Bool, Pointer: true)],
        ["EndpointHints"] = [new(1, "forZones", K.Msgs, "ForZone")],
        ["ForZone"] = [new(1, "name", K.String)],
        ["EndpointPort"] = [new(1, "name", K.String, Pointer: true), new(2, "protocol", K.String, Pointer: true), new(3, "port", K.Int, Pointer: true),
                            new(4, "appProtocol", K.String, Pointer: true)],
        // meta.v1 DeleteOptions: only read from JSON bodies here (CheckJsonTypes), never decoded from protobuf.
        ["DeleteOptions"] = [new(1, "gracePeriodSeconds", K.Int, Pointer: true), new(2, "preconditions", K.Msg, "Preconditions"),
                             new(3, "orphanDependents", K.Bool, Pointer: true), new(4, "propagationPolicy", K.String, Pointer: true), new(5, "dryRun", K.Strings)],
        ["Preconditions"] = [new(1, "uid", K.String, Pointer: true), new(2, "resourceVersion", K.String, Pointer: true)],
    };

    /// <summary>
    /// The kinds accepted as protobuf bodies: those typed clients send (see above). The other
    /// kinds' tables serve <see cref="CheckJsonTypes"/> only; their bodies must come as JSON.
    /// </summary>
    private static readonly HashSet<string> ProtobufKinds = ["ConfigMap", "Secret", "Namespace", "ServiceAccount", "Service", "TokenRequest", "Deployment",
        "SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview", "SelfSubjectRulesReview"];

    public sealed class UnsupportedException(string message) : Exception(message);

    /// <summary>
    /// The same tables, for JSON bodies: a member they know must have the JSON type upstream's
    /// decoder requires of it (a number for an int, a string or a number for an int-or-string, an
    /// object of strings for a map, ...), or the object is refused with a 400 naming the member,
    /// as upstream refuses it, instead of being stored for a controller or the kubelet to trip
    /// over. Members the tables do not know are left alone (kept as unknown fields); of a kind
    /// without a table only the metadata is checked.
    /// </summary>
    public static void CheckJsonTypes(string kind, string apiVersion, JsonObject obj)
    {
        // A kind without a table of its own still has the standard metadata.
        var m = Schemas.ContainsKey(kind) && kind is not "ObjectMeta" ? Mismatch<NodeTree, JsonNode>(obj, kind)
            : obj["metadata"] is JsonObject meta && Mismatch<NodeTree, JsonNode>(meta, "ObjectMeta") is { } inMeta ? ("metadata." + inMeta.Path, inMeta.Expected) : null;
        if (m is { } found)
            throw ApiException.BadRequest($"{kind} in version \"{apiVersion}\" cannot be handled as a {kind}: {found.Path}: expected {found.Expected}");
    }

    /// <summary>
    /// The same check on a parsed document (<paramref name="root"/>, an object of a kind with a
    /// table): true when <see cref="CheckJsonTypes"/> would accept the same body.
    /// </summary>
    public static bool JsonTypesOk(string kind, JsonElement root) => Mismatch<ElementTree, JsonElement>(root, kind) is null;

    /// <summary>What <see cref="Mismatch"/> reads of a JSON tree: the node tree of the general write path, or a parsed document.</summary>
    private interface ITree<TNode>
    {
        /// <summary>The member named by <paramref name="f"/>, if present and not null (null is the zero value).</summary>
        static abstract bool TryMember(TNode obj, F f, out TNode value);
        static abstract JsonValueKind Kind(TNode node);
        /// <summary>A number without a fraction, or one the server itself built from an integer type.</summary>
        static abstract bool IsInteger(TNode node);
        static abstract int Count(TNode array);
        /// <summary>Item <paramref name="i"/>, unless it is null.</summary>
        static abstract bool TryItem(TNode array, int i, out TNode item);
        /// <summary>The key of the first member of <paramref name="map"/> that is neither null, a string nor (for quantities) a number.</summary>
        static abstract string? BadMapValue(TNode map, bool quantities);
    }

    private readonly struct NodeTree : ITree<JsonNode>
    {
        public static bool TryMember(JsonNode obj, F f, out JsonNode value) => (value = obj.AsObject()[f.Name]!) is not null;
        public static JsonValueKind Kind(JsonNode node) => node.GetValueKind();
        public static bool IsInteger(JsonNode node)
        {
            var v = node.AsValue();
            return v.TryGetValue(out long _) || v.TryGetValue(out int _) || v.TryGetValue(out uint _) || v.TryGetValue(out ulong _)
                || v.TryGetValue(out short _) || v.TryGetValue(out ushort _) || v.TryGetValue(out byte _) || v.TryGetValue(out sbyte _);
        }
        public static int Count(JsonNode array) => array.AsArray().Count;
        public static bool TryItem(JsonNode array, int i, out JsonNode item) => (item = array.AsArray()[i]!) is not null;
        public static string? BadMapValue(JsonNode map, bool quantities)
        {
            foreach (var (key, value) in map.AsObject())
                if (value is { } e && e.GetValueKind() is var k && k != JsonValueKind.String && !(quantities && k == JsonValueKind.Number)) return key;
            return null;
        }
    }

    private readonly struct ElementTree : ITree<JsonElement>
    {
        public static bool TryMember(JsonElement obj, F f, out JsonElement value) =>
            obj.TryGetProperty(f.Utf8, out value) && value.ValueKind != JsonValueKind.Null;
        public static JsonValueKind Kind(JsonElement node) => node.ValueKind;
        public static bool IsInteger(JsonElement node) => node.TryGetInt64(out _) || node.TryGetUInt64(out _);
        public static int Count(JsonElement array) => array.GetArrayLength();
        public static bool TryItem(JsonElement array, int i, out JsonElement item) => (item = array[i]).ValueKind != JsonValueKind.Null;
        public static string? BadMapValue(JsonElement map, bool quantities)
        {
            foreach (var p in map.EnumerateObject())
                if (p.Value.ValueKind is var k && k is not (JsonValueKind.Null or JsonValueKind.String) && !(quantities && k == JsonValueKind.Number)) return p.Name;
            return null;
        }
    }

    /// <summary>
    /// The first member of <paramref name="o"/> (a <paramref name="message"/>) whose JSON type its
    /// table refuses, with its path relative to <paramref name="o"/>. Paths are built on the way
    /// back up, so a body that passes (every create and update) allocates nothing here.
    /// </summary>
    private static (string Path, string Expected)? Mismatch<T, TNode>(TNode o, string message) where T : struct, ITree<TNode>
    {
        foreach (var f in Schemas[message])
        {
            if (f.Kind == K.Inline)
            {
                if (Mismatch<T, TNode>(o, f.Msg!) is { } inlined) return inlined;
                continue;
            }
            if (!T.TryMember(o, f, out var v)) continue;
            var kind = T.Kind(v);
            switch (f.Kind)
            {
                case K.String or K.Bytes or K.Time or K.MicroTime when kind != JsonValueKind.String:
                    return (f.Name, "a string");
                case K.Int when kind != JsonValueKind.Number || !T.IsInteger(v):
                    return (f.Name, "an integer");
                case K.Bool when kind is not (JsonValueKind.True or JsonValueKind.False):
                    return (f.Name, "a boolean");
                case K.IntOrString when kind != JsonValueKind.String && (kind != JsonValueKind.Number || !T.IsInteger(v)):
                    return (f.Name, "an integer or a string");
                case K.Quantity when kind is not (JsonValueKind.String or JsonValueKind.Number):
                    return (f.Name, "a quantity");
                case K.Msg:
                    if (kind != JsonValueKind.Object) return (f.Name, "an object");
                    if (Mismatch<T, TNode>(v, f.Msg!) is { } inner) return ($"{f.Name}.{inner.Path}", inner.Expected);
                    break;
                case K.Msgs:
                    if (kind != JsonValueKind.Array) return (f.Name, "a list");
                    for (int i = 0, n = T.Count(v); i < n; i++)
                    {
                        if (!T.TryItem(v, i, out var item)) continue;
                        if (T.Kind(item) != JsonValueKind.Object) return ($"{f.Name}[{i}]", "an object");
                        if (Mismatch<T, TNode>(item, f.Msg!) is { } inItem) return ($"{f.Name}[{i}].{inItem.Path}", inItem.Expected);
                    }
                    break;
                case K.Strings:
                    if (kind != JsonValueKind.Array) return (f.Name, "a list of strings");
                    for (int i = 0, n = T.Count(v); i < n; i++)
                        if (T.TryItem(v, i, out var e) && T.Kind(e) != JsonValueKind.String) return ($"{f.Name}[{i}]", "a string");
                    break;
                case K.MapString or K.MapBytes or K.MapQuantity:
                    if (kind != JsonValueKind.Object) return (f.Name, "a map");
                    if (T.BadMapValue(v, f.Kind == K.MapQuantity) is { } key)
                        return ($"{f.Name}[{key}]", f.Kind == K.MapQuantity ? "a quantity" : "a string");
                    break;
            }
        }
        return null;
    }

    /// <summary>Decodes a whole request body (magic + runtime.Unknown + object) into JSON.</summary>
    public static JsonObject Decode(ReadOnlySpan<byte> body)
    {
        if (body.Length < 4 || !body[..4].SequenceEqual("k8s\0"u8)) throw new UnsupportedException("protobuf body without the k8s\\0 prefix");
        string? apiVersion = null, kind = null, contentEncoding = null;
        ReadOnlySpan<byte> raw = default;
        var r = new Reader(body[4..]);
        while (r.Next(out int num, out int wire))
        {
            switch (num)
            {
                case 1:
                    var tm = new Reader(r.Bytes(wire));
                    while (tm.Next(out int tn, out int tw))
                    {
                        if (tn == 1) apiVersion = Encoding.UTF8.GetString(tm.Bytes(tw));
                        else if (tn == 2) kind = Encoding.UTF8.GetString(tm.Bytes(tw));
                        else tm.Skip(tw);
                    }
                    break;
                case 2: raw = r.Bytes(wire); break;
                case 3: contentEncoding = Encoding.UTF8.GetString(r.Bytes(wire)); break;
                default: r.Skip(wire); break;
            }
        }
        if (!string.IsNullOrEmpty(contentEncoding)) throw new UnsupportedException($"protobuf contentEncoding \"{contentEncoding}\" is not supported");
        if (kind is null || !ProtobufKinds.Contains(kind))
            throw new UnsupportedException($"protobuf bodies of kind \"{kind}\" are not supported by this server; send application/json");
        var obj = Message(raw, kind, kind);
        var result = new JsonObject { ["kind"] = kind, ["apiVersion"] = apiVersion };
        foreach (var (k, v) in obj)
            result[k] = v?.DeepClone();
        return result;
    }

    private static JsonObject Message(ReadOnlySpan<byte> data, string type, string path)
    {
        var fields = Schemas[type];
        var o = new JsonObject();
        var r = new Reader(data);
        while (r.Next(out int num, out int wire))
        {
            var f = Array.Find(fields, x => x.Num == num);
            if (f is null)
            {
                if (!r.SkipZero(wire)) throw new UnsupportedException($"protobuf field {num} of {type} (at {path}) is not supported by this server; send application/json");
                continue;
            }
            string at = path + "." + f.Name;
            switch (f.Kind)
            {
                case K.String:
                    string s = Encoding.UTF8.GetString(r.Bytes(wire));
                    if (s.Length > 0 || f.Pointer) o[f.Name] = s;
                    break;
                case K.Bytes:
                    o[f.Name] = Convert.ToBase64String(r.Bytes(wire));
                    break;
                case K.Int:
                    long v = r.Varint(wire);
                    if (v != 0 || f.Pointer) o[f.Name] = v;
                    break;
                case K.Bool:
                    bool b = r.Varint(wire) != 0;
                    if (b || f.Pointer) o[f.Name] = b;
                    break;
                case K.Msg:
                    o[f.Name] = Message(r.Bytes(wire), f.Msg!, at);
                    break;
                case K.Inline:
                    var inner = Message(r.Bytes(wire), f.Msg!, path);
                    foreach (var name in inner.Select(m => m.Key).ToList())
                    {
                        var member = inner[name];
                        inner.Remove(name);
                        o[name] = member;
                    }
                    break;
                case K.Quantity:
                    o[f.Name] = Quantity(r.Bytes(wire));
                    break;
                case K.Msgs:
                    ((o[f.Name] as JsonArray) ?? (JsonArray)(o[f.Name] = new JsonArray())).Add((JsonNode)Message(r.Bytes(wire), f.Msg!, at));
                    break;
                case K.Strings:
                    ((o[f.Name] as JsonArray) ?? (JsonArray)(o[f.Name] = new JsonArray())).Add((JsonNode)JsonValue.Create(Encoding.UTF8.GetString(r.Bytes(wire))));
                    break;
                case K.MapString or K.MapBytes or K.MapQuantity:
                    var (key, value) = Entry(r.Bytes(wire), f.Kind);
                    ((o[f.Name] as JsonObject) ?? (JsonObject)(o[f.Name] = new JsonObject()))[key] = value;
                    break;
                case K.Time or K.MicroTime:
                    var t = Time(r.Bytes(wire), f.Kind == K.MicroTime);
                    if (t is not null) o[f.Name] = t;
                    break;
                case K.IntOrString:
                    o[f.Name] = IntOrString(r.Bytes(wire));
                    break;
            }
        }
        return o;
    }

    private static (string, JsonNode) Entry(ReadOnlySpan<byte> data, K kind)
    {
        string key = "";
        JsonNode value = "";
        var r = new Reader(data);
        while (r.Next(out int num, out int wire))
        {
            if (num == 1) key = Encoding.UTF8.GetString(r.Bytes(wire));
            else if (num == 2)
            {
                var v = r.Bytes(wire);
                value = kind switch
                {
                    K.MapBytes => Convert.ToBase64String(v),
                    K.MapQuantity => Quantity(v),
                    _ => Encoding.UTF8.GetString(v),
                };
            }
            else r.Skip(wire);
        }
        return (key, value);
    }

    private static string Quantity(ReadOnlySpan<byte> data)
    {
        var r = new Reader(data);
        string s = "";
        while (r.Next(out int num, out int wire))
            if (num == 1) s = Encoding.UTF8.GetString(r.Bytes(wire)); else r.Skip(wire);
        return s;
    }

    /// <summary>meta/v1 Time (RFC 3339, whole seconds) or MicroTime (six fraction digits): seconds = 1, nanos = 2.</summary>
    private static string? Time(ReadOnlySpan<byte> data, bool micro)
    {
        long seconds = 0, nanos = 0;
        var r = new Reader(data);
        while (r.Next(out int num, out int wire))
        {
            if (num == 1) seconds = r.Varint(wire);
            else if (num == 2) nanos = r.Varint(wire);
            else r.Skip(wire);
        }
        if (seconds == 0 && nanos == 0) return null;
        var t = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return micro
            ? t.AddTicks(nanos / 100).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture)
            : NodeAgent.Api.Meta.ApiTime.Format(t);
    }

    private static JsonNode IntOrString(ReadOnlySpan<byte> data)
    {
        long type = 0, intVal = 0;
        string strVal = "";
        var r = new Reader(data);
        while (r.Next(out int num, out int wire))
        {
            switch (num)
            {
                case 1: type = r.Varint(wire); break;
                case 2: intVal = r.Varint(wire); break;
                case 3: strVal = Encoding.UTF8.GetString(r.Bytes(wire)); break;
                default: r.Skip(wire); break;
            }
        }
        return type == 1 ? JsonValue.Create(strVal) : JsonValue.Create(intVal);
    }

    /// <summary>A protobuf wire reader over a span; malformed input throws <see cref="UnsupportedException"/>.</summary>
    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _data = data;

        public bool Next(out int num, out int wire)
        {
            num = wire = 0;
            if (_data.IsEmpty) return false;
            ulong tag = ReadVarint();
            num = (int)(tag >> 3);
            wire = (int)(tag & 7);
            if (num == 0) throw new UnsupportedException("malformed protobuf: field number 0");
            return true;
        }

        private ulong ReadVarint()
        {
            ulong v = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_data.IsEmpty) throw new UnsupportedException("malformed protobuf: truncated varint");
                byte b = _data[0];
                _data = _data[1..];
                v |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return v;
            }
            throw new UnsupportedException("malformed protobuf: varint too long");
        }

        public long Varint(int wire)
        {
            if (wire != 0) throw new UnsupportedException($"malformed protobuf: expected a varint, got wire type {wire}");
            return (long)ReadVarint();
        }

        public ReadOnlySpan<byte> Bytes(int wire)
        {
            if (wire != 2) throw new UnsupportedException($"malformed protobuf: expected length-delimited, got wire type {wire}");
            ulong len = ReadVarint();
            if (len > (ulong)_data.Length) throw new UnsupportedException("malformed protobuf: length beyond the end");
            var s = _data[..(int)len];
            _data = _data[(int)len..];
            return s;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: ReadVarint(); break;
                case 1: if (_data.Length < 8) throw new UnsupportedException("malformed protobuf"); _data = _data[8..]; break;
                case 2: Bytes(2); break;
                case 5: if (_data.Length < 4) throw new UnsupportedException("malformed protobuf"); _data = _data[4..]; break;
                default: throw new UnsupportedException($"malformed protobuf: wire type {wire}");
            }
        }

        /// <summary>Skips a field and says whether it held a zero value (0, empty, or a message of zeros).</summary>
        public bool SkipZero(int wire)
        {
            switch (wire)
            {
                case 0: return ReadVarint() == 0;
                case 1: { bool z = _data.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(_data) == 0; Skip(1); return z; }
                case 5: { bool z = _data.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(_data) == 0; Skip(5); return z; }
                case 2: return IsZeroMessage(Bytes(2));
                default: Skip(wire); return false;
            }
        }

        private static bool IsZeroMessage(ReadOnlySpan<byte> data)
        {
            if (data.IsEmpty) return true;
            try
            {
                var r = new Reader(data);
                while (r.Next(out _, out int w))
                    if (!r.SkipZero(w)) return false;
                return true;
            }
            catch (UnsupportedException)
            {
                return false;
            }
        }
    }
}
