using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Auth;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Api;

/// <summary>
/// serviceaccounts/token: the TokenRequest API (authentication.k8s.io/v1) the kubelet calls for
/// projected serviceAccountToken volumes and `kubectl create token` uses. Validation follows
/// upstream: at least 10 minutes, at most 2^32 seconds (then capped by the issuer), a bound object
/// must be a Pod of the namespace and, when its uid is given, that very pod.
/// </summary>
public sealed partial class ApiServer
{
    private async Task TokenRequestAsync(HttpContext ctx, RequestInfo req)
    {
        var issuer = _opts.ServiceAccountTokens ?? throw ApiException.UnknownResource();
        var saItem = await _store.GetAsync(req.Info.Key(req.Namespace, req.Name!), ctx.RequestAborted).ConfigureAwait(false)
            ?? throw ApiException.NotFound(req.Info.Ref, req.Name!);
        string saUid = Json.ParseObject(saItem.Value.Span).ObjOrNull("metadata").Str("uid") ?? "";
        var body = await ReadObjectAsync(ctx, req.Info).ConfigureAwait(false);
        if (body.Str("kind") is { } k && k != "TokenRequest") throw ApiException.BadRequest($"expected a TokenRequest, got {k}");
        var spec = body.ObjOrNull("spec");
        var audiences = (spec?["audiences"] as JsonArray ?? []).Select(a => a?.GetValueKind() == JsonValueKind.String ? a.GetValue<string>() : "").Where(a => a.Length > 0).ToList();
        if (audiences.Count == 0) audiences.Add(ServiceAccountTokens.Issuer);
        long seconds = spec.Long("expirationSeconds") ?? 3600;
        var errors = new List<FieldError>();
        if (seconds < 600) errors.Add(FieldError.Invalid("spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"));
        if (seconds > 1L << 32) errors.Add(FieldError.Invalid("spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds"));
        BoundPod? bound = null;
        var refObj = spec.ObjOrNull("boundObjectRef");
        if (refObj is not null)
        {
            string kind = refObj.Str("kind") ?? "", name = refObj.Str("name") ?? "";
            if (kind != "Pod") errors.Add(FieldError.Invalid("spec.boundObjectRef.kind", kind, "supported values: \"Pod\""));
            if (name.Length == 0) errors.Add(FieldError.Required("spec.boundObjectRef.name"));
            if (errors.Count == 0)
            {
                var pods = _resources.Get("", "pods");
                var podItem = await _store.GetAsync(pods.Key(req.Namespace, name), ctx.RequestAborted).ConfigureAwait(false) ?? throw ApiException.NotFound(pods.Ref, name);
                var pod = Json.ParseObject(podItem.Value.Span);
                string uid = pod.ObjOrNull("metadata").Str("uid") ?? "";
                if (refObj.Str("uid") is { Length: > 0 } want && want != uid)
                    throw ApiException.Conflict(pods.Ref, name, $"the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated");
                bound = new BoundPod(name, uid, pod.ObjOrNull("spec").Str("nodeName"));
            }
        }
        if (errors.Count > 0) throw ApiException.Invalid("TokenRequest", "authentication.k8s.io", req.Name!, errors);
        var (token, expires) = issuer.Issue(req.Namespace!, req.Name!, saUid, audiences, TimeSpan.FromSeconds(seconds), bound);
        await WriteJsonAsync(ctx, 201, w =>
        {
            w.WriteStartObject();
            w.WriteString("kind", "TokenRequest");
            w.WriteString("apiVersion", "authentication.k8s.io/v1");
            w.WriteStartObject("metadata");
            w.WriteString("name", req.Name);
            w.WriteString("namespace", req.Namespace);
            w.WriteNull("creationTimestamp");
            w.WriteEndObject();
            w.WriteStartObject("spec");
            w.WriteStartArray("audiences");
            foreach (var a in audiences) w.WriteStringValue(a);
            w.WriteEndArray();
            w.WriteNumber("expirationSeconds", seconds);
            if (bound is not null)
            {
                w.WriteStartObject("boundObjectRef");
                w.WriteString("kind", "Pod");
                w.WriteString("apiVersion", "v1");
                w.WriteString("name", bound.Name);
                w.WriteString("uid", bound.Uid);
                w.WriteEndObject();
            }
            else w.WriteNull("boundObjectRef");
            w.WriteEndObject();
            w.WriteStartObject("status");
            w.WriteString("token", token);
            w.WriteString("expirationTimestamp", Json.Rfc3339(expires));
            w.WriteEndObject();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }
}
