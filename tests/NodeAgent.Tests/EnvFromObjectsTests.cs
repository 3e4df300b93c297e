using NodeAgent.Api.Core;
using NodeAgent.Pods;
using Xunit;

namespace NodeAgent.Tests;

public sealed class EnvFromObjectsTests
{
    private static EnvResolver.PodFacts Facts(params ((ObjectKind, string), IReadOnlyDictionary<string, string>?)[] objects) =>
        new("n1", "10.0.0.1", "10.1.0.5", ["10.1.0.5"], 2000, 1 << 30) { Objects = objects.ToDictionary(o => o.Item1, o => o.Item2) };

    private static Pod PodWith(Container c) => new() { Metadata = new() { Name = "p", Namespace = "ns", Uid = "u" }, Spec = new() { Containers = [c] } };

    [Fact]
    public void EnvFromAndKeyRefsResolveInOrderWithPrefixesAndLaterValuesWinning()
    {
        var c = new Container
        {
            Name = "c",
            EnvFrom = [new() { ConfigMapRef = new() { Name = "cfg" } }, new() { Prefix = "S_", SecretRef = new() { Name = "sec" } }],
            Env =
            [
                new() { Name = "MODE", ValueFrom = new() { ConfigMapKeyRef = new() { Name = "cfg", Key = "mode" } } },
                new() { Name = "PW", ValueFrom = new() { SecretKeyRef = new() { Name = "sec", Key = "password" } } },
                new() { Name = "OPT", ValueFrom = new() { ConfigMapKeyRef = new() { Name = "absent", Key = "x", Optional = true } } },
                new() { Name = "LINK", Value = "$(MODE)-$(S_password)" },
                new() { Name = "mode", Value = "override" },
            ],
        };
        var env = EnvResolver.Resolve(PodWith(c), c, Facts(
            ((ObjectKind.ConfigMap, "cfg"), new Dictionary<string, string> { ["mode"] = "fast", ["bad=key"] = "x" }),
            ((ObjectKind.Secret, "sec"), new Dictionary<string, string> { ["password"] = "hunter2" }),
            ((ObjectKind.ConfigMap, "absent"), null)));
        Assert.Equal(
            [new("mode", "override"), new("S_password", "hunter2"), new("MODE", "fast"), new("PW", "hunter2"), new("LINK", "fast-hunter2")],
            env);
    }

    [Theory]
    [InlineData("missing", "k", false, "configmap \"missing\" not found")]
    [InlineData("cfg", "nokey", false, "couldn't find key nokey in ConfigMap ns/cfg")]
    public void MissingObjectsAndKeysFailTheContainerWithKubeletsMessage(string name, string key, bool optional, string message)
    {
        var c = new Container { Name = "c", Env = [new() { Name = "X", ValueFrom = new() { ConfigMapKeyRef = new() { Name = name, Key = key, Optional = optional } } }] };
        var e = Assert.Throws<ContainerConfigException>(() => EnvResolver.Resolve(PodWith(c), c,
            Facts(((ObjectKind.ConfigMap, "cfg"), new Dictionary<string, string> { ["k"] = "v" }), ((ObjectKind.ConfigMap, "missing"), null))));
        Assert.Equal(message, e.Message);
        Assert.Equal([(ObjectKind.ConfigMap, name)], EnvResolver.References(c));
    }
}
