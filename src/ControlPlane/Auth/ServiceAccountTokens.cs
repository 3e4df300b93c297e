using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace NodeAgent.ControlPlane.Auth;

/// <summary>What a bound token is tied to (TokenRequest spec.boundObjectRef, kind Pod).</summary>
public sealed record BoundPod(string Name, string Uid, string? NodeName);

/// <summary>
/// Bound service-account tokens (KEP-1205): JWTs signed ES256 with the cluster's service-account key
/// (pki/sa.key, made on first start), issuer https://kubernetes.default.svc.cluster.local, the
/// "kubernetes.io" private claim naming namespace, service account and bound pod, as kube-apiserver
/// issues them for the TokenRequest API. <see cref="Validate"/> turns one back into the caller
/// system:serviceaccount:&lt;ns&gt;:&lt;name&gt;. Signature, issuer, audience and lifetime are checked;
/// that the service account and pod still exist is not (yet): lifetimes are capped at 24 h.
/// </summary>
public sealed class ServiceAccountTokens
{
    public const string Issuer = "https://kubernetes.default.svc.cluster.local";
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromHours(24);
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(60);

    private readonly ECDsa _key;
    private readonly string _header;
    private readonly TimeProvider _time;

    public ServiceAccountTokens(string pkiDir, TimeProvider time)
    {
        _time = time;
        string path = Path.Combine(pkiDir, "sa.key");
        _key = ECDsa.Create();
        if (File.Exists(path)) _key.ImportFromPem(File.ReadAllText(path));
        else
        {
            _key.GenerateKey(ECCurve.NamedCurves.nistP256);
            Pki.ClusterPki.WriteSecret(path, _key.ExportPkcs8PrivateKeyPem());
        }
        string kid = Base64Url.EncodeToString(SHA256.HashData(_key.ExportSubjectPublicKeyInfo()));
        _header = Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"{{\"alg\":\"ES256\",\"kid\":\"{kid}\"}}"));
    }

    public (string Token, DateTimeOffset Expires) Issue(string ns, string serviceAccount, string serviceAccountUid,
        IReadOnlyList<string> audiences, TimeSpan lifetime, BoundPod? pod)
    {
        var now = _time.GetUtcNow();
        var exp = now + (lifetime > MaxLifetime ? MaxLifetime : lifetime);
        var body = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(body))
        {
            w.WriteStartObject();
            w.WriteStartArray("aud");
            foreach (var a in audiences) w.WriteStringValue(a);
            w.WriteEndArray();
            w.WriteNumber("exp", exp.ToUnixTimeSeconds());
            w.WriteNumber("iat", now.ToUnixTimeSeconds());
            w.WriteString("iss", Issuer);
            w.WriteString("jti", Guid.NewGuid().ToString());
            w.WriteStartObject("kubernetes.io");
            w.WriteString("namespace", ns);
            if (pod is not null)
            {
                if (pod.NodeName is { Length: > 0 } node)
                {
                    w.WriteStartObject("node");
                    w.WriteString("name", node);
                    w.WriteEndObject();
                }
                w.WriteStartObject("pod");
                w.WriteString("name", pod.Name);
                w.WriteString("uid", pod.Uid);
                w.WriteEndObject();
            }
            w.WriteStartObject("serviceaccount");
            w.WriteString("name", serviceAccount);
            w.WriteString("uid", serviceAccountUid);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteNumber("nbf", now.ToUnixTimeSeconds());
            w.WriteString("sub", $"system:serviceaccount:{ns}:{serviceAccount}");
            w.WriteEndObject();
        }
        string signingInput = _header + "." + Base64Url.EncodeToString(body.WrittenSpan);
        var sig = _key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return (signingInput + "." + Base64Url.EncodeToString(sig), exp);
    }

    /// <summary>The service account a token speaks for, or null if it is not one of ours or not valid now.</summary>
    public UserInfo? Validate(string token) => ValidateClaims(token)?.User;

    /// <summary>What a valid token names: the account (and its uid) and, for a bound token, the pod (and its uid).</summary>
    public sealed record Claims(UserInfo User, string Namespace, string ServiceAccount, string ServiceAccountUid, string? Pod, string? PodUid);

    /// <summary>Signature, issuer, audience and lifetime checked; whether the objects it names still exist is the caller's check.</summary>
    public Claims? ValidateClaims(string token)
    {
        int a = token.IndexOf('.'), b = a < 0 ? -1 : token.IndexOf('.', a + 1);
        if (a <= 0 || b <= a || token.IndexOf('.', b + 1) >= 0) return null;
        try
        {
            var sig = Base64Url.DecodeFromChars(token.AsSpan(b + 1));
            if (!_key.VerifyData(Encoding.ASCII.GetBytes(token[..b]), sig, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
                return null;
            using var doc = JsonDocument.Parse(Base64Url.DecodeFromChars(token.AsSpan(a + 1, b - a - 1)));
            var c = doc.RootElement;
            var now = _time.GetUtcNow().ToUnixTimeSeconds();
            if (!c.TryGetProperty("iss", out var iss) || iss.GetString() != Issuer) return null;
            if (!c.TryGetProperty("exp", out var exp) || exp.GetInt64() + Skew.TotalSeconds < now) return null;
            if (c.TryGetProperty("nbf", out var nbf) && nbf.GetInt64() - Skew.TotalSeconds > now) return null;
            if (!c.TryGetProperty("aud", out var aud) || !(aud.ValueKind == JsonValueKind.Array ? aud.EnumerateArray().Any(x => x.GetString() == Issuer) : aud.GetString() == Issuer))
                return null;
            var k8s = c.GetProperty("kubernetes.io");
            string ns = k8s.GetProperty("namespace").GetString()!;
            var sa = k8s.GetProperty("serviceaccount");
            string name = sa.GetProperty("name").GetString()!, uid = sa.GetProperty("uid").GetString() ?? "";
            string? pod = null, podUid = null;
            if (k8s.TryGetProperty("pod", out var p)) { pod = p.GetProperty("name").GetString(); podUid = p.GetProperty("uid").GetString(); }
            return new Claims(new UserInfo($"system:serviceaccount:{ns}:{name}", uid, ["system:serviceaccounts", $"system:serviceaccounts:{ns}", "system:authenticated"]),
                ns, name, uid, pod, podUid);
        }
        catch (Exception e) when (e is FormatException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }
}
