using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace NodeAgent.Api.Client;

/// <summary>Certificate checks shared by the API client, the kubelet API and the control plane.</summary>
public static class Certificates
{
    /// <summary>True when <paramref name="cert"/> chains to <paramref name="ca"/> (no system roots, no revocation), optionally for one extended key usage.</summary>
    public static bool ChainsTo(X509Certificate2 cert, X509Certificate2 ca, string? ekuOid = null)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (ekuOid is not null) chain.ChainPolicy.ApplicationPolicy.Add(new Oid(ekuOid));
        return chain.Build(cert);
    }

    public const string ClientAuth = "1.3.6.1.5.5.7.3.2";
}
