using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Auth;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// authorization.k8s.io/v1: the access reviews (create only, nothing stored), answered by the same
/// <see cref="IAuthorizer"/> that guards every request. <c>kubectl auth can-i</c> creates a
/// SelfSubjectAccessReview, <c>kubectl auth can-i --list</c> a SelfSubjectRulesReview; webhooks and
/// controllers ask about others with a SubjectAccessReview or, within a namespace, a
/// LocalSubjectAccessReview.
/// </summary>
public sealed partial class ApiServer
{
    public const string AuthorizationGroup = "authorization.k8s.io";

    private async Task AccessReviewAsync(HttpContext ctx, string[] seg)
    {
        if (await HandGroupDiscoveryAsync(ctx, seg, AuthorizationGroup, "v1").ConfigureAwait(false)) return;
        string? ns = null;
        string resource;
        if (seg.Length == 6 && seg[3] == "namespaces" && seg[5] == "localsubjectaccessreviews") { ns = seg[4]; resource = seg[5]; }
        else if (seg.Length == 4 && seg[3] is "selfsubjectaccessreviews" or "subjectaccessreviews" or "selfsubjectrulesreviews") resource = seg[3];
        else throw ApiException.UnknownResource();
        if (ctx.Request.Method != "POST") throw new ApiException(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
        var caller = ctx.Items["user"] as UserInfo ?? throw ApiException.Unauthorized();
        string kind = resource switch
        {
            "localsubjectaccessreviews" => "LocalSubjectAccessReview",
            "selfsubjectaccessreviews" => "SelfSubjectAccessReview",
            "selfsubjectrulesreviews" => "SelfSubjectRulesReview",
            _ => "SubjectAccessReview",
        };
        var review = ParseObject(ctx, kind, await ReadBodyAsync(ctx).ConfigureAwait(false));
        CheckTypeMeta(review, resource, kind, AuthorizationGroup + "/v1");
        KubeProtobuf.CheckJsonTypes(kind, AuthorizationGroup + "/v1", review);
        var meta = review.ObjOrNull("metadata");
        if (ns is not null)
        {
            if (meta?.Str("namespace") is { Length: > 0 } bodyNs && bodyNs != ns)
                throw ApiException.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        }
        var spec = review.ObjOrNull("spec");
        if (kind == "SelfSubjectRulesReview")
        {
            string rulesNs = spec.Str("namespace") ?? "";
            if (rulesNs.Length == 0) throw ApiException.BadRequest("no namespace on request");
            var rules = _authorizer.RulesFor(caller, rulesNs);
            await WriteJsonAsync(ctx, 201, w => WriteRulesReview(w, rulesNs, rules)).ConfigureAwait(false);
            return;
        }

        var ra = spec.ObjOrNull("resourceAttributes");
        var nra = spec.ObjOrNull("nonResourceAttributes");
        var errors = new List<FieldError>();
        // metadata carries nothing here (a local review its namespace), as upstream validates it.
        if (meta is not null && meta.Any(p => p.Key != "namespace" || ns is null))
            errors.Add(FieldError.Invalid("metadata", meta.ToJsonString(), ns is null ? "must be empty" : "must be empty except for namespace"));
        if (ra is not null && nra is not null)
            errors.Add(FieldError.Invalid("spec.nonResourceAttributes", nra.ToJsonString(), "cannot be specified in combination with resourceAttributes"));
        if (ra is null && nra is null)
            errors.Add(FieldError.Invalid("spec.resourceAttributes", null, "exactly one of nonResourceAttributes or resourceAttributes must be specified"));
        UserInfo subject = caller;
        if (kind is "SubjectAccessReview" or "LocalSubjectAccessReview")
        {
            string user = spec.Str("user") ?? "";
            var groups = Strings(spec?["groups"]);
            if (user.Length == 0 && groups.Count == 0)
                errors.Add(FieldError.Invalid("spec.user", user, "at least one of user or group must be specified"));
            subject = new UserInfo(user, spec.Str("uid") ?? "", groups);
        }
        if (ns is not null)
        {
            if (ra is not null && (ra.Str("namespace") ?? "") != ns)
                errors.Add(FieldError.Invalid("spec.resourceAttributes.namespace", ra.Str("namespace") ?? "", "must match metadata.namespace"));
            if (nra is not null)
                errors.Add(FieldError.Invalid("spec.nonResourceAttributes", nra.ToJsonString(), "disallowed on this kind of request"));
        }
        if (errors.Count > 0) throw ApiException.Invalid(kind, AuthorizationGroup, "", errors);

        var attributes = ra is not null
            ? new AuthorizationAttributes(subject, ra.Str("verb") ?? "", true, "", ra.Str("namespace") ?? "", ra.Str("group") ?? "",
                ra.Str("version") ?? "", ra.Str("resource") ?? "", ra.Str("subresource") ?? "", ra.Str("name") ?? "")
            : new AuthorizationAttributes(subject, nra.Str("verb") ?? "", false, nra.Str("path") ?? "");
        var (decision, reason) = _authorizer.Authorize(attributes);
        await WriteJsonAsync(ctx, 201, w =>
        {
            w.WriteStartObject();
            w.WriteString("kind", kind);
            w.WriteString("apiVersion", AuthorizationGroup + "/v1");
            w.WriteStartObject("metadata");
            if (ns is not null) w.WriteString("namespace", ns);
            w.WriteNull("creationTimestamp");
            w.WriteEndObject();
            w.WriteStartObject("spec");
            if (ra is not null)
            {
                w.WriteStartObject("resourceAttributes");
                foreach (var f in (string[])["namespace", "verb", "group", "version", "resource", "subresource", "name"])
                    if (ra.Str(f) is { Length: > 0 } v) w.WriteString(f, v);
                w.WriteEndObject();
            }
            else
            {
                w.WriteStartObject("nonResourceAttributes");
                if (nra.Str("path") is { Length: > 0 } p) w.WriteString("path", p);
                if (nra.Str("verb") is { Length: > 0 } v) w.WriteString("verb", v);
                w.WriteEndObject();
            }
            if (kind is "SubjectAccessReview" or "LocalSubjectAccessReview")
            {
                if (subject.Name.Length > 0) w.WriteString("user", subject.Name);
                if (subject.Groups.Count > 0)
                {
                    w.WriteStartArray("groups");
                    foreach (var g in subject.Groups) w.WriteStringValue(g);
                    w.WriteEndArray();
                }
                if (subject.Uid.Length > 0) w.WriteString("uid", subject.Uid);
            }
            w.WriteEndObject();
            w.WriteStartObject("status");
            w.WriteBoolean("allowed", decision == Decision.Allow);
            if (decision == Decision.Deny) w.WriteBoolean("denied", true);
            if (reason.Length > 0) w.WriteString("reason", reason);
            w.WriteEndObject();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    private static List<string> Strings(JsonNode? array)
    {
        var list = new List<string>();
        if (array is JsonArray a)
            foreach (var item in a)
                if (item?.GetValueKind() == JsonValueKind.String && item.GetValue<string>() is { Length: > 0 } s) list.Add(s);
        return list;
    }

    private static void WriteRulesReview(Utf8JsonWriter w, string ns, Rules rules)
    {
        static void Array(Utf8JsonWriter w, string name, string[] values)
        {
            if (values.Length == 0) return;
            w.WriteStartArray(name);
            foreach (var v in values) w.WriteStringValue(v);
            w.WriteEndArray();
        }
        w.WriteStartObject();
        w.WriteString("kind", "SelfSubjectRulesReview");
        w.WriteString("apiVersion", AuthorizationGroup + "/v1");
        w.WriteStartObject("metadata");
        w.WriteNull("creationTimestamp");
        w.WriteEndObject();
        w.WriteStartObject("spec");
        w.WriteString("namespace", ns);
        w.WriteEndObject();
        w.WriteStartObject("status");
        w.WriteStartArray("resourceRules");
        foreach (var r in rules.ResourceRules)
        {
            w.WriteStartObject();
            Array(w, "verbs", r.Verbs);
            Array(w, "apiGroups", r.ApiGroups);
            Array(w, "resources", r.Resources);
            Array(w, "resourceNames", r.ResourceNames);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("nonResourceRules");
        foreach (var r in rules.NonResourceRules)
        {
            w.WriteStartObject();
            Array(w, "verbs", r.Verbs);
            Array(w, "nonResourceURLs", r.NonResourceUrls);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteBoolean("incomplete", rules.Incomplete);
        if (rules.EvaluationError.Length > 0) w.WriteString("evaluationError", rules.EvaluationError);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
