using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using NodeAgent.Api.Client;
using Xunit;

namespace NodeAgent.Tests;

public sealed class KubeconfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kubeconfig-").FullName;

    private static (string Cert, string Key) SelfSigned(string cn)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256);
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
        return (cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    [Fact]
    public void TheCurrentContextWithEmbeddedCertificatesIsLoaded()
    {
        var ca = SelfSigned("ca");
        var client = SelfSigned("system:node:n1");
        string path = Path.Combine(_dir, "a.kubeconfig");
        File.WriteAllText(path, $$"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: other
              cluster: {server: "https://10.0.0.9:6443"}
            - name: c
              cluster:
                server: https://127.0.0.1:6443
                certificate-authority-data: {{B64(ca.Cert)}}
            users:
            - name: u
              user:
                client-certificate-data: {{B64(client.Cert)}}
                client-key-data: {{B64(client.Key)}}
            contexts:
            - name: ctx
              context: {cluster: c, user: u}
            current-context: ctx
            """);
        var cfg = ClientConfig.FromKubeconfig(path);
        Assert.Equal(new Uri("https://127.0.0.1:6443"), cfg.Server);
        Assert.Equal("CN=ca", cfg.CaCertificate!.Subject);
        Assert.Equal("CN=system:node:n1", cfg.ClientCertificate!.Subject);
        Assert.True(cfg.ClientCertificate.HasPrivateKey);
        Assert.Equal("u", cfg.User);
    }

    [Fact]
    public void FilePathsAreRelativeToTheKubeconfigAndTokensAreRead()
    {
        var ca = SelfSigned("ca");
        File.WriteAllText(Path.Combine(_dir, "ca.crt"), ca.Cert);
        File.WriteAllText(Path.Combine(_dir, "token"), "abc\n");
        string path = Path.Combine(_dir, "b.kubeconfig");
        File.WriteAllText(path, """
            {"apiVersion":"v1","kind":"Config","current-context":"x",
             "clusters":[{"name":"c","cluster":{"server":"https://k:6443","certificate-authority":"ca.crt"}}],
             "users":[{"name":"u","user":{"tokenFile":"token"}}],
             "contexts":[{"name":"x","context":{"cluster":"c","user":"u"}}]}
            """);
        var cfg = ClientConfig.FromKubeconfig(path);
        Assert.Equal(Path.Combine(_dir, "token"), cfg.TokenFile);
        Assert.NotNull(cfg.CaCertificate);
        Assert.Null(cfg.ClientCertificate);
    }

    [Theory]
    [InlineData("current-context: nope\ncontexts: []\n", "no context named \"nope\"")]
    [InlineData("clusters: [{name: c, cluster: {server: \"ftp://x\"}}]\ncontexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", "is not an http(s) URL")]
    [InlineData("contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", "no cluster named \"c\"")]
    [InlineData("a: [b\n", "kubeconfig")]
    public void BadKubeconfigsAreReportedWithTheProblem(string yaml, string expected)
    {
        string path = Path.Combine(_dir, "bad.kubeconfig");
        File.WriteAllText(path, yaml);
        var e = Assert.Throws<ArgumentException>(() => ClientConfig.FromKubeconfig(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    public void Dispose() => Directory.Delete(_dir, true);
}
