using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace NodeAgent.ControlPlane.Pki;

/// <summary>
/// The cluster's certificates, kept in DATA_DIR/pki: a CA made on first start, the API server's
/// serving certificate (re-issued when its names change), and client certificates whose subject
/// carries the user (CN) and groups (O), as kube-apiserver's x509 authenticator reads them.
/// Keys are ECDSA P-256.
/// </summary>
public sealed class ClusterPki
{
    private readonly string _dir;

    public ClusterPki(string dataDir)
    {
        _dir = Path.Combine(dataDir, "pki");
        Directory.CreateDirectory(_dir);
        if (!File.Exists(CaCertPath) || !File.Exists(CaKeyPath))
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var req = new CertificateRequest("CN=node-agent-ca", key, HashAlgorithmName.SHA256);
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
            req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
            using var ca = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(10));
            WriteSecret(CaKeyPath, key.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(CaCertPath, ca.ExportCertificatePem());
        }
        Ca = X509Certificate2.CreateFromPemFile(CaCertPath, CaKeyPath);
    }

    public string CaCertPath => Path.Combine(_dir, "ca.crt");
    private string CaKeyPath => Path.Combine(_dir, "ca.key");
    public X509Certificate2 Ca { get; }

    /// <summary>The serving certificate for these names, issued (again) when the stored one does not cover them.</summary>
    public X509Certificate2 ServingCertificate(IReadOnlyCollection<string> dnsNames, IReadOnlyCollection<IPAddress> ips)
    {
        string crt = Path.Combine(_dir, "apiserver.crt"), key = Path.Combine(_dir, "apiserver.key");
        if (File.Exists(crt) && File.Exists(key))
        {
            var existing = X509Certificate2.CreateFromPemFile(crt, key);
            var san = existing.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
            if (san is not null && existing.NotAfter > DateTime.UtcNow.AddDays(30)
                && dnsNames.All(d => san.EnumerateDnsNames().Contains(d)) && ips.All(i => san.EnumerateIPAddresses().Contains(i)))
                return existing;
            existing.Dispose();
        }
        var sans = new SubjectAlternativeNameBuilder();
        foreach (var d in dnsNames) sans.AddDnsName(d);
        foreach (var i in ips) sans.AddIpAddress(i);
        var (certPem, keyPem) = Issue("CN=kube-apiserver", sans.Build(), serverAuth: true, TimeSpan.FromDays(365 * 2));
        File.WriteAllText(crt, certPem);
        WriteSecret(key, keyPem);
        return X509Certificate2.CreateFromPemFile(crt, key);
    }

    /// <summary>A client certificate for <paramref name="user"/> in <paramref name="groups"/> (PEM cert, PEM key).</summary>
    public (string CertPem, string KeyPem) ClientCertificate(string user, IEnumerable<string> groups)
    {
        var dn = new StringBuilder();
        foreach (var g in groups) dn.Append("O=").Append(Escape(g)).Append(", ");
        dn.Append("CN=").Append(Escape(user));
        return Issue(dn.ToString(), null, serverAuth: false, TimeSpan.FromDays(365));
    }

    private static string Escape(string s) => s.Contains(',') || s.Contains('"') || s.Contains('=') ? "\"" + s.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"" : s;

    private (string, string) Issue(string subject, X509Extension? san, bool serverAuth, TimeSpan lifetime)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid(serverAuth ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        if (san is not null) req.CertificateExtensions.Add(san);
        req.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var cert = req.Create(Ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow + lifetime, serial);
        return (cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>True when <paramref name="cert"/> was issued by the cluster CA and is valid now.</summary>
    public bool Verify(X509Certificate2 cert) => NodeAgent.Api.Client.Certificates.ChainsTo(cert, Ca, NodeAgent.Api.Client.Certificates.ClientAuth);

    /// <summary>A kubeconfig that authenticates with an embedded client certificate.</summary>
    public string Kubeconfig(string server, string user, IEnumerable<string> groups, string contextName = "node-agent")
    {
        var (cert, key) = ClientCertificate(user, groups);
        static string B64(string pem) => Convert.ToBase64String(Encoding.UTF8.GetBytes(pem));
        return $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: {contextName}
              cluster:
                server: {server}
                certificate-authority-data: {B64(File.ReadAllText(CaCertPath))}
            users:
            - name: {user}
              user:
                client-certificate-data: {B64(cert)}
                client-key-data: {B64(key)}
            contexts:
            - name: {contextName}
              context:
                cluster: {contextName}
                user: {user}
            current-context: {contextName}

            """;
    }

    public static void WriteSecret(string path, string text)
    {
        File.WriteAllText(path, "");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(path, text);
    }
}
