using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Api;

namespace NodeAgent.ControlPlane.Auth;

/// <summary>
/// User impersonation (<c>kubectl --as</c>, <c>--as-group</c>, <c>--as-uid</c>), as upstream's filter does it: the
/// Impersonate-User, -Uid, -Group and -Extra-KEY headers name who the request is to run as; the
/// authenticated caller needs the <c>impersonate</c> verb on each of them (users or a service
/// account, groups, uids, userextras/KEY), checked with the same authorizer as every request; the
/// request then runs as that user, and the headers are removed.
/// </summary>
public static class Impersonation
{
    public const string UserHeader = "Impersonate-User", UidHeader = "Impersonate-Uid", GroupHeader = "Impersonate-Group", ExtraPrefix = "Impersonate-Extra-";
    private const string ServiceAccountPrefix = "system:serviceaccount:";

    /// <summary>
    /// The user the request runs as: <paramref name="actor"/> itself without impersonation headers,
    /// the impersonated user when the actor may impersonate all of what the headers ask for. Throws
    /// upstream's 403 for the first thing it may not impersonate, and upstream's 500 for groups,
    /// extras or a uid without a user.
    /// </summary>
    public static UserInfo Apply(UserInfo actor, IHeaderDictionary headers, IAuthorizer authorizer)
    {
        string user = headers[UserHeader].ToString();
        string uid = headers[UidHeader].ToString();
        var groups = new List<string>();
        foreach (var g in headers[GroupHeader])
            if (!string.IsNullOrEmpty(g)) groups.Add(g);
        Dictionary<string, List<string>>? extra = null;
        List<string>? extraHeaders = null;
        foreach (var (name, values) in headers)
        {
            if (!name.StartsWith(ExtraPrefix, StringComparison.OrdinalIgnoreCase)) continue;
            (extraHeaders ??= []).Add(name);
            string key = Uri.UnescapeDataString(name[ExtraPrefix.Length..].ToLowerInvariant());
            extra ??= new(StringComparer.Ordinal);
            if (!extra.TryGetValue(key, out var list)) extra[key] = list = [];
            foreach (var v in values)
                if (v is not null) list.Add(v);
        }
        if (user.Length == 0)
        {
            if (groups.Count == 0 && extra is null && uid.Length == 0) return actor;
            throw ApiException.Internal("requested impersonation of groups, extra or uid without impersonating a user");
        }

        // Each thing impersonated is a separate check, as upstream makes it.
        void Check(string group, string resource, string name, string ns = "", string sub = "")
        {
            var attributes = new AuthorizationAttributes(actor, "impersonate", true, "", ns, group, "", resource, sub, name);
            var (decision, reason) = authorizer.Authorize(attributes);
            if (decision != Decision.Allow) throw ApiException.Forbidden(attributes, reason);
        }
        string? serviceAccountNs = null;
        if (user.StartsWith(ServiceAccountPrefix, StringComparison.Ordinal) && user[ServiceAccountPrefix.Length..].Split(':') is [{ Length: > 0 } saNs, { Length: > 0 } saName])
        {
            Check("", "serviceaccounts", saName, saNs);
            serviceAccountNs = saNs;
        }
        else
        {
            Check("", "users", user);
        }
        foreach (var g in groups) Check("", "groups", g);
        if (extra is not null)
            foreach (var (key, values) in extra)
                foreach (var v in values) Check("authentication.k8s.io", "userextras", v, sub: key);
        if (uid.Length > 0) Check("authentication.k8s.io", "uids", uid);

        // A service account named without groups is in its own.
        if (serviceAccountNs is not null && groups.Count == 0) groups.AddRange(["system:serviceaccounts", "system:serviceaccounts:" + serviceAccountNs]);

        // The groups every user of that kind is in.
        string implied = user == "system:anonymous" ? "system:unauthenticated" : "system:authenticated";
        if (!groups.Contains(implied)) groups.Add(implied);
        headers.Remove(UserHeader);
        headers.Remove(UidHeader);
        headers.Remove(GroupHeader);
        if (extraHeaders is not null)
            foreach (var h in extraHeaders) headers.Remove(h);
        return new UserInfo(user, uid, groups, extra);
    }
}
