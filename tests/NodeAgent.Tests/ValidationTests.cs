using NodeAgent.Api.Core;
using NodeAgent.Api.Meta;
using NodeAgent.Api.Serialization;
using NodeAgent.Api.Validation;
using Xunit;

namespace NodeAgent.Tests;

public sealed class ValidationTests
{
    private static List<string> Errors(string yaml, bool staticPod = true)
    {
        var pod = Assert.Single(ManifestDecoder.DecodePods(yaml));
        PodDefaults.Apply(pod);
        return PodValidation.Validate(pod, staticPod).Select(e => e.ToString()).ToList();
    }

    [Fact]
    public void ApiPodsMayUseVolumeTypesThatStaticPodsMayNot()
    {
        const string spec = "spec: {volumes: [{name: v, configMap: {name: x}}, {name: s, secret: {secretName: y}}], containers: [{name: c, image: i}]}";
        Assert.Empty(Errors(Head + spec, staticPod: false));
        Assert.NotEmpty(Errors(Head + spec, staticPod: true));
        Assert.Contains(Errors(Head + "spec: {volumes: [{name: v, configMap: {name: x}, emptyDir: {}}], containers: [{name: c, image: i}]}", staticPod: false),
            e => e.Contains("may not specify more than 1 volume type", StringComparison.Ordinal));
    }

    private const string Head = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";

    [Fact]
    public void AValidPodHasNoErrors() =>
        Assert.Empty(Errors(Head + "spec: {containers: [{name: c, image: busybox:1.36, ports: [{name: http, containerPort: 80}], readinessProbe: {httpGet: {port: http}}}]}"));

    [Theory]
    [InlineData("spec: {containers: [{name: c}]}", "spec.containers[0].image: Required value")]
    [InlineData("spec: {containers: [{name: C_1, image: i}]}", "spec.containers[0].name: Invalid value: \"C_1\": a lowercase RFC 1123 label")]
    [InlineData("spec: {initContainers: [{name: c, image: i}], containers: [{name: c, image: i}]}", "spec.containers[0].name: Duplicate value: \"c\"")]
    [InlineData("spec: {containers: [{name: c, image: i, ports: [{containerPort: 70000}]}]}", "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive")]
    [InlineData("spec: {containers: [{name: c, image: i, ports: [{name: a-very-long-port-name, containerPort: 1}]}]}", "must be no more than 15 characters")]
    [InlineData("spec: {containers: [{name: c, image: i, ports: [{name: '80', containerPort: 1}]}]}", "must contain at least one letter")]
    [InlineData("spec: {containers: [{name: c, image: i, ports: [{name: a, containerPort: 1}, {name: a, containerPort: 2}]}]}", "spec.containers[0].ports[1].name: Duplicate value: \"a\"")]
    [InlineData("spec: {containers: [{name: c, image: i, ports: [{containerPort: 1, protocol: ICMP}]}]}", "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"")]
    [InlineData("spec: {containers: [{name: c, image: i, env: [{name: 'A=B', value: x}]}]}", "spec.containers[0].env[0].name: Invalid value: \"A=B\"")]
    [InlineData("spec: {containers: [{name: c, image: i, env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.bogus}}}]}]}", "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.bogus\"")]
    [InlineData("spec: {containers: [{name: c, image: i, resources: {limits: {cpu: lots}}}]}", "spec.containers[0].resources.limits[cpu]: Invalid value: \"lots\"")]
    [InlineData("spec: {containers: [{name: c, image: i, resources: {requests: {memory: 2Gi}, limits: {memory: 1Gi}}}]}", "spec.containers[0].resources.requests[memory]: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi")]
    [InlineData("spec: {volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}], containers: [{name: c, image: i}]}", "spec.volumes[1].name: Duplicate value: \"v\"")]
    [InlineData("spec: {volumes: [{name: v}], containers: [{name: c, image: i}]}", "spec.volumes[0]: Required value: must specify a volume type")]
    [InlineData("spec: {volumes: [{name: v, hostPath: {path: rel}}], containers: [{name: c, image: i}]}", "spec.volumes[0].hostPath.path: Invalid value: \"rel\": must be an absolute path")]
    [InlineData("spec: {volumes: [{name: v, configMap: {name: x}}], containers: [{name: c, image: i}]}", "spec.volumes[0].configMap: Forbidden")]
    [InlineData("spec: {volumes: [{name: v, emptyDir: {}}], containers: [{name: c, image: i, volumeMounts: [{name: v, mountPath: /a, subPath: ../x}]}]}", "subPath: Invalid value: \"../x\": must not contain '..'")]
    [InlineData("spec: {containers: [{name: c, image: i, livenessProbe: {exec: {command: [x]}, successThreshold: 2}}]}", "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1")]
    [InlineData("spec: {containers: [{name: c, image: i, livenessProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}}]}", "spec.containers[0].livenessProbe: Forbidden: may not specify more than 1 handler type")]
    [InlineData("spec: {containers: [{name: c, image: i, restartPolicy: Always}]}", "spec.containers[0].restartPolicy: Forbidden")]
    [InlineData("spec: {initContainers: [{name: i, image: i, restartPolicy: Never}], containers: [{name: c, image: i}]}", "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\"")]
    [InlineData("spec: {initContainers: [{name: i, image: i, readinessProbe: {exec: {command: [x]}}}], containers: [{name: c, image: i}]}", "spec.initContainers[0].readinessProbe: Forbidden")]
    [InlineData("spec: {dnsPolicy: Magic, containers: [{name: c, image: i}]}", "spec.dnsPolicy: Unsupported value: \"Magic\"")]
    [InlineData("spec: {containers: [{name: c, image: i, imagePullPolicy: Sometimes}]}", "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\"")]
    [InlineData("spec: {containers: [{name: c, image: i, lifecycle: {preStop: {}}}]}", "spec.containers[0].lifecycle.preStop: Required value: must specify a handler type")]
    // A null list item or required member decodes as Go's zero value, as upstream does: an error naming it, never a crash.
    [InlineData("spec: {containers: [~]}", "spec.containers[0].name: Required value")]
    [InlineData("spec: {containers: null}", "spec.containers: Required value")]
    [InlineData("spec: {initContainers: [null], containers: [{name: c, image: i}]}", "spec.initContainers[0].image: Required value")]
    [InlineData("spec: {volumes: [null], containers: [{name: c, image: i}]}", "spec.volumes[0].name: Required value")]
    [InlineData("spec: {containers: [{name: c, image: i, ports: [null]}]}", "spec.containers[0].ports[0].containerPort: Required value")]
    [InlineData("spec: {containers: [{name: c, image: i, env: [null]}]}", "spec.containers[0].env[0].name: Required value")]
    [InlineData("spec: {containers: [{name: c, image: i, volumeMounts: [null]}]}", "spec.containers[0].volumeMounts[0].name: Required value")]
    [InlineData("spec: {containers: [{name: ~, image: i}]}", "spec.containers[0].name: Required value")]
    public void ErrorsNameTheFieldLikeTheApiserver(string spec, string expected) =>
        Assert.Contains(Errors(Head + spec), e => e.Contains(expected, StringComparison.Ordinal));

    [Fact]
    public void LabelsAreChecked()
    {
        var errs = Errors("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {'bad key!': v, ok: 'not ok!'}}\nspec: {containers: [{name: c, image: i}]}");
        Assert.Contains(errs, e => e.StartsWith("metadata.labels: Invalid value: \"bad key!\"", StringComparison.Ordinal));
        Assert.Contains(errs, e => e.StartsWith("metadata.labels: Invalid value: \"not ok!\"", StringComparison.Ordinal));
    }

    [Fact]
    public void DefaultsAreTheApiserversDefaults()
    {
        var pod = Assert.Single(ManifestDecoder.DecodePods(Head + """
            spec:
              containers:
              - name: c
                image: busybox
                ports: [{containerPort: 80}]
                resources: {limits: {cpu: 500m}}
                readinessProbe: {httpGet: {port: 80}}
              - {name: d, image: 'busybox:1.36'}
              - {name: e, image: 'busybox@sha256:abc'}
            """));
        PodDefaults.Apply(pod);
        Assert.Equal("Always", pod.Spec.RestartPolicy);
        Assert.Equal(30, pod.Spec.TerminationGracePeriodSeconds);
        Assert.Equal("ClusterFirst", pod.Spec.DnsPolicy);
        var c = pod.Spec.Containers[0];
        Assert.Equal("Always", c.ImagePullPolicy);
        Assert.Equal("IfNotPresent", pod.Spec.Containers[1].ImagePullPolicy);
        Assert.Equal("IfNotPresent", pod.Spec.Containers[2].ImagePullPolicy);
        Assert.Equal("/dev/termination-log", c.TerminationMessagePath);
        Assert.Equal("TCP", c.Ports![0].Protocol);
        Assert.Equal("500m", c.Resources!.Requests!["cpu"].Text);
        var p = c.ReadinessProbe!;
        Assert.Equal((1, 10, 1, 3, "/", "HTTP"), (p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold, p.HttpGet!.Path, p.HttpGet.Scheme));
    }

    [Theory]
    [InlineData("{}", "{}", QosClass.BestEffort)]
    [InlineData("{requests: {cpu: 100m}}", "{}", QosClass.Burstable)]
    [InlineData("{limits: {cpu: 1, memory: 1Gi}}", "{limits: {cpu: 1, memory: 1Gi}}", QosClass.Guaranteed)]
    [InlineData("{limits: {cpu: 1, memory: 1Gi}, requests: {cpu: 500m}}", "{limits: {cpu: 1, memory: 1Gi}}", QosClass.Burstable)]
    [InlineData("{limits: {cpu: 1, memory: 1Gi}}", "{}", QosClass.Burstable)]
    public void QosClassFollowsUpstream(string first, string second, string expected)
    {
        var pod = Assert.Single(ManifestDecoder.DecodePods(Head + $"spec: {{containers: [{{name: a, image: i, resources: {first}}}, {{name: b, image: i, resources: {second}}}]}}"));
        PodDefaults.Apply(pod);
        Assert.Equal(expected, PodDefaults.QosClassOf(pod.Spec));
    }

    [Theory]
    [InlineData("my-name", null)]
    [InlineData("a.b-c", null)]
    [InlineData("-a", "a lowercase RFC 1123 subdomain")]
    [InlineData("A", "a lowercase RFC 1123 subdomain")]
    public void SubdomainNames(string name, string? error) =>
        Assert.Equal(error, Names.Dns1123Subdomain(name)?[..Math.Min(error?.Length ?? 0, Names.Dns1123Subdomain(name)?.Length ?? 0)]);

    [Fact]
    public void IntOrStringReadsBoth()
    {
        var pod = Assert.Single(ManifestDecoder.DecodePods(Head + "spec: {containers: [{name: c, image: i, livenessProbe: {tcpSocket: {port: 8080}}, readinessProbe: {tcpSocket: {port: web}}}]}"));
        Assert.Equal(new IntOrString(8080), pod.Spec.Containers[0].LivenessProbe!.TcpSocket!.Port);
        Assert.Equal(new IntOrString("web"), pod.Spec.Containers[0].ReadinessProbe!.TcpSocket!.Port);
    }
}
