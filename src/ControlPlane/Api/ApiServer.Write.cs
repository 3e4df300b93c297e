using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using NodeAgent.Api.Serialization;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Patch;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Api;

/// <summary>create, update, patch, delete, deletecollection and pods/binding.</summary>
public sealed partial class ApiServer
{
    private const int MaxRetries = 16;
    private const string NameChars = "bcdfghjklmnpqrstvwxz2456789";

    private static bool DryRun(HttpContext ctx) => ctx.Request.Query["dryRun"] == "All";

    private static bool IsApply(HttpContext ctx) =>
        ctx.Request.Method == "PATCH" && ctx.Request.ContentType?.StartsWith("application/apply-patch+yaml", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>
    /// Server-side field validation of a body's members its kind does not declare
    /// (<see cref="FieldSchema"/>), by the request's fieldValidation: Strict refuses the request with
    /// upstream's 400 (<c>Pod in version "v1" cannot be handled as a Pod: strict decoding error:
    /// unknown field "spec.containers[0].imagee"</c>), Warn (the default, as upstream's) answers
    /// with one Warning header per field, Ignore says nothing. Unknown fields that are let through
    /// are stored, as every unknown field is.
    /// </summary>
    private static void CheckFields(HttpContext ctx, ResourceInfo info, JsonElement body) =>
        Judge(ctx, info, FieldSchema.Check(info.Kind, info.Group, body));

    /// <inheritdoc cref="CheckFields(HttpContext, ResourceInfo, JsonElement)"/>
    private static void CheckFields(HttpContext ctx, ResourceInfo info, JsonObject body) =>
        Judge(ctx, info, FieldSchema.Check(info.Kind, info.Group, body));

    /// <summary>
    /// An update's or patch's <paramref name="next"/> object, judged only on the unknown fields it
    /// brings: those <paramref name="old"/> already held were let through before. Its member types
    /// are judged whole, as upstream decodes the whole object.
    /// </summary>
    private static void CheckNewFields(HttpContext ctx, ResourceInfo info, JsonObject next, JsonObject old)
    {
        var found = FieldSchema.Check(info.Kind, info.Group, next);
        var unknown = found.Unknown;
        if (unknown.Count > 0 && ValidatesFields(ctx)) unknown = unknown.Except(FieldSchema.UnknownFields(info.Kind, info.Group, old)).ToList();
        Judge(ctx, info, found with { Unknown = unknown });
    }

    /// <summary>A member of a type its field cannot hold is a 400 whatever fieldValidation says (upstream's decoder refuses it); unknown members go by fieldValidation.</summary>
    private static void Judge(HttpContext ctx, ResourceInfo info, FieldSchema.Findings found)
    {
        if (found.Mismatch is { } m)
            throw ApiException.BadRequest($"{info.Kind} in version \"{info.Version}\" cannot be handled as a {info.Kind}: {m.Path}: expected {m.Expected}");
        if (ValidatesFields(ctx)) Report(ctx, info, found.Unknown);
    }

    private static void Report(HttpContext ctx, ResourceInfo info, List<string> unknown)
    {
        if (unknown.Count == 0) return;
        string mode = ctx.Request.Query["fieldValidation"].ToString();
        if (mode == "Strict")
            throw ApiException.BadRequest($"{info.Kind} in version \"{info.Version}\" cannot be handled as a {info.Kind}: strict decoding error: "
                + string.Join(", ", unknown.Select(f => $"unknown field \"{f}\"")));
        var headers = ctx.Response.Headers;
        foreach (var f in unknown)
        {
            string warning = $"299 - \"unknown field \\\"{f}\\\"\"";
            if (!headers["Warning"].Contains(warning)) headers.Append("Warning", warning);
        }
    }

    /// <summary>Whether the request asks for field validation at all (fieldValidation=Ignore does not).</summary>
    private static bool ValidatesFields(HttpContext ctx) => ctx.Request.Query["fieldValidation"] != "Ignore";

    /// <summary>
    /// Who a write is filed under in managedFields: the fieldManager option, else (as upstream) the
    /// user agent up to its first '/', at most 128 characters.
    /// </summary>
    private static FieldOwner Owner(HttpContext ctx, string? subresource)
    {
        string manager = ctx.Request.Query["fieldManager"].ToString();
        if (manager.Length == 0)
        {
            string ua = ctx.Request.Headers.UserAgent.ToString();
            int slash = ua.IndexOf('/');
            manager = slash >= 0 ? ua[..slash] : ua;
            if (manager.Length > 128) manager = manager[..128];
        }
        return new FieldOwner(manager, subresource);
    }

    /// <summary>
    /// The query options every write takes (Create/Update/Patch/DeleteOptions), checked as upstream
    /// checks them before anything is read or written: dryRun (<see cref="CheckDryRun"/>), fieldManager
    /// at most 128 bytes of printable characters, fieldValidation one of Ignore, Warn, Strict.
    /// </summary>
    private static void CheckWriteOptions(HttpContext ctx)
    {
        var q = ctx.Request.Query;
        string kind = ctx.Request.Method switch { "POST" => "CreateOptions", "PUT" => "UpdateOptions", "PATCH" => "PatchOptions", _ => "DeleteOptions" };
        CheckDryRun(kind, q["dryRun"]);
        var errs = new List<FieldError>();
        if (q["fieldManager"].ToString() is { Length: > 0 } manager)
        {
            if (System.Text.Encoding.UTF8.GetByteCount(manager) > 128) errs.Add(new FieldError("fieldManager", "Too long", null, "may not be more than 128 bytes"));
            else if (manager.Any(char.IsControl)) errs.Add(FieldError.Invalid("fieldManager", manager, "must only contain printable characters"));
        }
        if (q["force"].ToString() is { Length: > 0 } force)
        {
            if (!IsApply(ctx)) errs.Add(FieldError.Forbidden("force", "may not be specified for non-apply patch"));
            else if (force is not ("true" or "false")) throw ApiException.BadRequest($"invalid force \"{force}\"");
        }
        if (IsApply(ctx) && q["fieldManager"].ToString().Length == 0) errs.Add(FieldError.Required("fieldManager", "is required for apply patch"));
        if (errs.Count > 0) throw ApiException.Invalid(kind, "meta.k8s.io", "", errs);
        if (q["fieldValidation"].ToString() is { Length: > 0 } fv && fv is not ("Ignore" or "Warn" or "Strict"))
            throw ApiException.BadRequest($"fieldValidation parameter unsupported: {fv}");
    }

    /// <summary>dryRun, from the query or a DeleteOptions body, may only be "All": anything else is not a dry run, so it must not be taken as a write.</summary>
    private static void CheckDryRun(string kind, IEnumerable<string?> values)
    {
        foreach (var v in values)
            if (v != "All") throw ApiException.Invalid(kind, "meta.k8s.io", "", [FieldError.NotSupported("dryRun", v, "All")]);
    }

    private string Now() => Json.Rfc3339(_time.GetUtcNow());

    private async Task EnsureNamespaceAsync(string ns, CancellationToken ct)
    {
        if (_namespaces.TryGetValue(ns, out bool terminating))
        {
            if (!terminating) return;
            throw new ApiException(403, "Forbidden", $"unable to create new content in namespace {ns} because it is being terminated")
            { DetailName = ns, DetailKind = "namespaces" };
        }
        var nsInfo = _resources.Get("", "namespaces");
        var item = await _store.GetAsync(nsInfo.Key(null, ns), ct).ConfigureAwait(false)
                   ?? throw ApiException.NotFound(nsInfo.Ref, ns);
        var obj = Json.ParseObject(item.Value.Span);
        if (obj.Meta()["deletionTimestamp"] is not null || obj.ObjOrNull("status").Str("phase") == "Terminating")
            throw new ApiException(403, "Forbidden", $"unable to create new content in namespace {ns} because it is being terminated")
            { DetailName = ns, DetailKind = "namespaces" };
    }

    private async Task CreateAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        var body = await ReadBodyAsync(ctx).ConfigureAwait(false);
        if (info.Strategy is PodStrategy strategy && !DryRun(ctx) && !WantsTable(ctx) && IsJsonBody(ctx)
            && PodCreateEncoder.TryParse(body, req.Namespace!) is { } pod)
        {
            using (pod)
            {
                CheckFields(ctx, info, pod.Root);
                await CreatePodAsync(ctx, req, strategy, pod).ConfigureAwait(false);
            }
            return;
        }
        var obj = ParseObject(ctx, info, body);
        CheckTypeMeta(obj, info, info.Kind, info.ApiVersion);
        CheckFields(ctx, info, obj);
        var (code, result, stored) = await CreateObjectAsync(info, req.Namespace, obj, DryRun(ctx), ctx.RequestAborted).ConfigureAwait(false);
        if (stored is not null && !WantsTable(ctx))
        {
            // The bytes just written, with their resourceVersion: no second serialization.
            ctx.Response.StatusCode = code;
            ctx.Response.ContentType = "application/json";
            ObjectCodec.WriteWithResourceVersion(stored, long.Parse(result.Meta().Str("resourceVersion")!, CultureInfo.InvariantCulture), ctx.Response.BodyWriter);
            await ctx.Response.BodyWriter.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
            return;
        }
        await WriteObjectAsync(ctx, code, info, result).ConfigureAwait(false);
    }

    /// <summary>Creates <paramref name="obj"/> (already type-checked, JSON nulls dropped as <see cref="ReadObjectAsync"/> does). Also used by bootstrap.</summary>
    public async Task<(int Code, JsonObject Obj, byte[]? Stored)> CreateObjectAsync(ResourceInfo info, string? ns, JsonObject obj, bool dryRun, CancellationToken ct)
    {
        string? generate = CheckNewObject(info, ns, obj);
        if (info.Namespaced) await EnsureNamespaceAsync(ns!, ct).ConfigureAwait(false);
        StampNewObject(info, obj, Guid.NewGuid().ToString(), Now());
        var meta = obj.Meta();
        string name = meta.Str("name") ?? "";
        var errs = info.Strategy.PrepareAndValidateCreate(obj, info.Namespaced, out var encoded);
        HashSet<string> picked = [];
        if (info.Resource == "services" && errs.Count == 0) picked = _alloc.Assign(obj, null, errs);
        if (errs.Count > 0) throw ApiException.Invalid(info.Kind, info.Group, name, errs);
        if (dryRun) return (201, obj, null);
        for (int attempt = 0; ; attempt++)
        {
            var reserve = info.Resource == "services" ? ServiceAllocator.KeysOf(obj) : null;
            // The strategy's bytes are the object as prepared; a retry has changed it since.
            var bytes = attempt == 0 && encoded is not null ? encoded : ObjectCodec.Encode(obj);
            var (result, rev, taken) = await _store.CreateAsync(info.Key(ns, name), bytes, reserve, ct).ConfigureAwait(false);
            switch (result)
            {
                case WriteResult.Ok:
                    meta["resourceVersion"] = rev.ToString(CultureInfo.InvariantCulture);
                    return (201, obj, bytes);
                case WriteResult.Exists when generate is not null && attempt < 8:
                    name = GenerateName(generate);
                    meta["name"] = name;
                    continue;
                case WriteResult.Exists:
                    throw ApiException.AlreadyExists(info.Ref, name);
                case WriteResult.ReservedKeyTaken when attempt < MaxRetries:
                    if (!_alloc.Repick(obj, taken!, picked, errs)) throw ApiException.Invalid(info.Kind, info.Group, name, errs);
                    picked.UnionWith(_alloc.Assign(obj, null, errs));
                    continue;
                default:
                    throw ApiException.Unavailable($"could not allocate a ClusterIP or NodePort for {info.Resource} \"{name}\" after {attempt} attempts");
            }
        }
    }

    /// <summary>
    /// A pod create through <see cref="PodCreateEncoder"/>: the same steps, checks and stored bytes as
    /// <see cref="CreateObjectAsync"/> with the pod strategy, for a body the encoder took.
    /// </summary>
    private async Task CreatePodAsync(HttpContext ctx, RequestInfo req, PodStrategy strategy, PodCreateEncoder pod)
    {
        var info = req.Info;
        string ns = req.Namespace!;
        string? generate = pod.GenerateName;
        string name = pod.Name ?? GenerateName(generate!);
        await EnsureNamespaceAsync(ns, ctx.RequestAborted).ConfigureAwait(false);
        string uid = Guid.NewGuid().ToString(), created = Now();
        string volume;
        do volume = ServiceAccountAdmission.NewVolumeName(); while (!pod.VolumeNameFree(volume));
        byte[]? status = null; // the same for every name tried
        for (int attempt = 0; ; attempt++)
        {
            var bytes = pod.Encode(ns, name, uid, created, volume);
            if (status is null)
            {
                var errs = strategy.ValidateEncoded(bytes, out string qos);
                if (errs.Count > 0) throw ApiException.Invalid(info.Kind, info.Group, name, errs);
                status = PodStrategy.PendingStatus(qos);
            }
            bytes = ObjectCodec.AppendMember(bytes, status);
            var (result, rev, _) = await _store.CreateAsync(info.Key(ns, name), bytes, null, ctx.RequestAborted).ConfigureAwait(false);
            switch (result)
            {
                case WriteResult.Ok:
                    ctx.Response.StatusCode = 201;
                    ctx.Response.ContentType = "application/json";
                    ObjectCodec.WriteWithResourceVersion(bytes, rev, ctx.Response.BodyWriter);
                    await ctx.Response.BodyWriter.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
                    return;
                case WriteResult.Exists when generate is not null && attempt < 8:
                    name = GenerateName(generate);
                    continue;
                default:
                    throw ApiException.AlreadyExists(info.Ref, name);
            }
        }
    }

    /// <summary>
    /// A create's checks of the body as sent, before anything is read or set (as upstream decodes
    /// it first): member types, the namespace against the path's, generateName (a name is drawn
    /// from it, and the prefix returned, when the body has no name).
    /// </summary>
    public static string? CheckNewObject(ResourceInfo info, string? ns, JsonObject obj)
    {
        KubeProtobuf.CheckJsonTypes(info.Kind, info.ApiVersion, obj);
        var meta = obj.Meta();
        if (info.Namespaced)
        {
            string? bodyNs = meta.Str("namespace");
            if (!string.IsNullOrEmpty(bodyNs) && bodyNs != ns)
                throw ApiException.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
            meta["namespace"] = ns;
        }
        else meta.Remove("namespace");
        string? generate = string.IsNullOrEmpty(meta.Str("name")) ? meta.Str("generateName") : null;
        if (generate is not null)
        {
            if (Names.Dns1123Subdomain(generate.TrimEnd('-') + "x") is { } ge)
                throw ApiException.Invalid(info.Kind, info.Group, generate, [FieldError.Invalid("metadata.generateName", generate, ge)]);
            meta["name"] = GenerateName(generate);
        }
        return generate;
    }

    /// <summary>What the server sets on every new object (uid, creationTimestamp; no members it owns), then the kind's defaults.</summary>
    public static void StampNewObject(ResourceInfo info, JsonObject obj, string uid, string created)
    {
        var meta = obj.Meta();
        meta["uid"] = uid;
        meta["creationTimestamp"] = created;
        meta.Remove("resourceVersion");
        meta.Remove("deletionTimestamp");
        meta.Remove("deletionGracePeriodSeconds");
        meta.Remove("generation");
        meta.Remove("selfLink");
        if (info.Resource == "secrets") SecretData.FoldStringData(obj);
        info.Strategy.Default(obj);
    }

    private static string GenerateName(string prefix)
    {
        if (prefix.Length > 58) prefix = prefix[..58];
        return string.Create(prefix.Length + 5, prefix, (span, p) =>
        {
            p.AsSpan().CopyTo(span);
            for (int i = p.Length; i < span.Length; i++) span[i] = NameChars[Random.Shared.Next(NameChars.Length)];
        });
    }

    // ---- update and patch ---------------------------------------------------------------------

    private async Task UpdateAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        if (req.Subresource == "scale")
        {
            var scale = await ReadObjectAsync(ctx, info).ConfigureAwait(false);
            var r = await UpdateScaleAsync(req, _ => scale, ctx.RequestAborted).ConfigureAwait(false);
            await WriteJsonAsync(ctx, 200, w => r.WriteTo(w)).ConfigureAwait(false);
            return;
        }
        var body = await ReadObjectAsync(ctx, info).ConfigureAwait(false);
        CheckTypeMeta(body, info, info.Kind, info.ApiVersion);
        string? bodyName = body.Meta().Str("name");
        if (bodyName != req.Name)
            throw ApiException.BadRequest($"the name of the object ({bodyName}) does not match the name on the URL ({req.Name})");
        if (info.Namespaced && body.Meta().Str("namespace") is { Length: > 0 } bns && bns != req.Namespace)
            throw ApiException.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        if (!info.Strategy.AllowUnconditionalUpdate && string.IsNullOrEmpty(body.Meta().Str("resourceVersion")))
            throw ApiException.Invalid(info.Kind, info.Group, req.Name!, [FieldError.Invalid("metadata.resourceVersion", "", "must be specified for an update")]);
        var result = await UpdateObjectAsync(info, req.Namespace, req.Name!, req.Subresource, _ => (JsonObject)body.DeepClone(), DryRun(ctx), ctx.RequestAborted,
            Owner(ctx, req.Subresource), validate: ctx).ConfigureAwait(false);
        await WriteObjectAsync(ctx, 200, info, result).ConfigureAwait(false);
    }

    private async Task PatchAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        string ct = (ctx.Request.ContentType ?? "").Split(';')[0].Trim();
        if (ct == "application/apply-patch+yaml")
        {
            await ApplyAsync(ctx, req).ConfigureAwait(false);
            return;
        }
        if (ct is not ("application/json-patch+json" or "application/merge-patch+json" or "application/strategic-merge-patch+json"))
            throw new ApiException(415, "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml");
        var patch = await ReadBodyAsync(ctx).ConfigureAwait(false);
        JsonObject? patchObj = null;
        if (ct != "application/json-patch+json")
        {
            try { patchObj = Json.ParseObject(patch); }
            catch (JsonException e) { throw ApiException.BadRequest("error decoding patch: " + e.Message); }
        }
        JsonObject Apply(JsonObject current) => ct switch
        {
            "application/json-patch+json" => JsonPatch.Apply(current, patch),
            "application/merge-patch+json" => MergePatch.Apply(current, patchObj) as JsonObject ?? throw ApiException.BadRequest("merge patch must be an object"),
            _ => StrategicMerge.Apply(current, patchObj!, req.Subresource == "scale" ? "Scale" : info.Kind),
        };
        if (req.Subresource == "scale")
        {
            var r = await UpdateScaleAsync(req, Apply, ctx.RequestAborted, Owner(ctx, "scale")).ConfigureAwait(false);
            await WriteJsonAsync(ctx, 200, w => r.WriteTo(w)).ConfigureAwait(false);
            return;
        }
        var result = await UpdateObjectAsync(info, req.Namespace, req.Name!, req.Subresource, current =>
        {
            var patched = Apply(current);
            if (patched.Str("kind") != info.Kind || patched.Str("apiVersion") != info.ApiVersion)
                CheckTypeMeta(patched, info, info.Kind, info.ApiVersion);
            if (patched.Meta().Str("name") != req.Name)
                throw ApiException.BadRequest($"the name of the object ({patched.Meta().Str("name")}) does not match the name on the URL ({req.Name})");
            return patched;
        }, DryRun(ctx), ctx.RequestAborted, Owner(ctx, req.Subresource), validate: ctx).ConfigureAwait(false);
        await WriteObjectAsync(ctx, 200, info, result).ConfigureAwait(false);
    }

    /// <summary>
    /// Server-side apply (PATCH with application/apply-patch+yaml): the configuration merged into
    /// the object for its field manager by <see cref="ManagedFields.Apply"/>, through the same
    /// update path as every write; an object that does not exist yet is created from it.
    /// </summary>
    private async Task ApplyAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        if (req.Subresource is not (null or "status"))
            throw new ApiException(415, "UnsupportedMediaType", $"apply is not supported on the {req.Subresource} subresource");
        string manager = ctx.Request.Query["fieldManager"].ToString();
        bool force = ctx.Request.Query["force"] == "true";
        var body = await ReadBodyAsync(ctx).ConfigureAwait(false);
        JsonObject config;
        try
        {
            var docs = YamlToJson.Convert(Encoding.UTF8.GetString(body));
            if (docs.Count != 1) throw ApiException.BadRequest("expected exactly one YAML document in the apply configuration");
            config = Json.ParseObject(docs[0]);
        }
        catch (Exception e) when (e is JsonException or ManifestException or InvalidOperationException)
        {
            throw ApiException.BadRequest("error decoding YAML: " + e.Message);
        }
        if (string.IsNullOrEmpty(config.Str("apiVersion")) || string.IsNullOrEmpty(config.Str("kind")))
            throw ApiException.BadRequest("invalid object type: apiVersion and kind must be set in an apply configuration");
        CheckTypeMeta(config, info, info.Kind, info.ApiVersion);
        var meta = config.ObjOrNull("metadata");
        if (meta?.Str("name") != req.Name)
            throw ApiException.BadRequest($"the name of the object ({meta?.Str("name")}) does not match the name on the URL ({req.Name})");
        if (info.Namespaced && meta!.Str("namespace") is { Length: > 0 } bns && bns != req.Namespace)
            throw ApiException.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        if (meta!["managedFields"] is not null)
            throw ApiException.BadRequest("metadata.managedFields must be nil");
        KubeProtobuf.CheckJsonTypes(info.Kind, info.ApiVersion, config);
        bool dryRun = DryRun(ctx);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                var result = await UpdateObjectAsync(info, req.Namespace, req.Name!, req.Subresource,
                    current => ManagedFields.Apply(current, config, info.Kind, manager, info.ApiVersion, force, req.Subresource, Now()),
                    dryRun, ctx.RequestAborted, validate: ctx).ConfigureAwait(false);
                await WriteObjectAsync(ctx, 200, info, result).ConfigureAwait(false);
                return;
            }
            catch (ApiException e) when (e.Code == 404 && e.DetailName == req.Name && req.Subresource is null && attempt == 0)
            {
                // Not there: an apply creates it (the configuration, filed under its manager).
            }
            try
            {
                var obj = ManagedFields.Apply(null, config, info.Kind, manager, info.ApiVersion, force, null, Now());
                CheckFields(ctx, info, obj);
                var (code, created, _) = await CreateObjectAsync(info, req.Namespace, obj, dryRun, ctx.RequestAborted).ConfigureAwait(false);
                await WriteObjectAsync(ctx, code, info, created).ConfigureAwait(false);
                return;
            }
            catch (ApiException e) when (e.Reason == "AlreadyExists" && attempt == 0)
            {
                // Created meanwhile by someone else: apply to it.
            }
        }
    }

    private async Task<JsonObject> UpdateScaleAsync(RequestInfo req, Func<JsonObject, JsonObject> change, CancellationToken ct, FieldOwner? owner = null)
    {
        var info = req.Info;
        var updated = await UpdateObjectAsync(info, req.Namespace, req.Name!, null, current =>
        {
            var scale = change(ToScale(current));
            if (scale.ObjOrNull("spec").Long("replicas") is not { } replicas || replicas < 0)
                throw ApiException.Invalid("Scale", "autoscaling", req.Name!, [FieldError.Invalid("spec.replicas", scale.ObjOrNull("spec").Long("replicas"), "must be greater than or equal to 0")]);
            if (scale.Meta().Str("resourceVersion") is { Length: > 0 } rv && rv != current.Meta().Str("resourceVersion"))
                throw ApiException.Conflict(info.Ref, req.Name!);
            var next = (JsonObject)current.DeepClone();
            next.Obj("spec")["replicas"] = replicas;
            return next;
        }, false, ct, owner).ConfigureAwait(false);
        return ToScale(updated);
    }

    /// <summary>
    /// The read-modify-write loop shared by update, patch, status writes and graceful deletion:
    /// <paramref name="produce"/> gets the current object (with its resourceVersion) and returns the
    /// desired one. A resourceVersion in the result that differs from the current one is a 409; a
    /// concurrent write between our read and our transaction makes the loop read again.
    /// </summary>
    public async Task<JsonObject> UpdateObjectAsync(ResourceInfo info, string? ns, string name, string? subresource,
        Func<JsonObject, JsonObject> produce, bool dryRun, CancellationToken ct, FieldOwner? owner = null, HttpContext? validate = null)
    {
        string key = info.Key(ns, name);
        for (int attempt = 0; ; attempt++)
        {
            var item = await _store.GetAsync(key, ct).ConfigureAwait(false) ?? throw ApiException.NotFound(info.Ref, name);
            var old = ObjectCodec.Decode(item.Value.Span, item.Revision);
            string currentRv = item.Revision.ToString(CultureInfo.InvariantCulture);
            var desired = produce((JsonObject)old.DeepClone());
            var dmeta = desired.Meta();
            if (dmeta.Str("resourceVersion") is { Length: > 0 } rv && rv != currentRv) throw ApiException.Conflict(info.Ref, name);
            Json.DropNulls(desired);
            // The object as sent (or as the patch made it), before anything is taken from the stored one.
            KubeProtobuf.CheckJsonTypes(info.Kind, info.ApiVersion, desired);
            if (validate is not null) CheckNewFields(validate, info, desired, old);
            if (subresource is "status") info.Strategy.CheckStatusWriteBody(desired);
            var next = subresource is "status" ? info.Strategy.PrepareForStatusUpdate(desired, old) : desired;
            if (subresource is "finalize")
            {
                next = (JsonObject)old.DeepClone();
                next.Obj("spec")["finalizers"] = desired.ObjOrNull("spec")?["finalizers"]?.DeepClone() ?? new JsonArray();
            }
            var meta = next.Meta();
            var oldMeta = old.Meta();
            var errs = new List<FieldError>();
            if (meta.Str("uid") is { Length: > 0 } uid && uid != oldMeta.Str("uid"))
                errs.Add(FieldError.Invalid("metadata.uid", uid, "field is immutable"));
            foreach (var f in (string[])["uid", "creationTimestamp", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds"])
                if (oldMeta[f] is { } v) meta[f] = v.DeepClone(); else meta.Remove(f);
            // managedFields left out of a write are kept, as upstream keeps them; [{}] clears them.
            if (meta["managedFields"] is JsonArray { Count: 1 } reset && reset[0] is JsonObject { Count: 0 }) meta.Remove("managedFields");
            else if (meta["managedFields"] is null && oldMeta["managedFields"] is { } mf) meta["managedFields"] = mf.DeepClone();
            meta["name"] = name;
            if (subresource is null)
            {
                if (info.Resource == "secrets") SecretData.FoldStringData(next);
                info.Strategy.Default(next);
                info.Strategy.PrepareForUpdate(next, old);
            }
            errs.AddRange(info.Strategy.ValidateUpdate(next, old, info.Namespaced));
            HashSet<string> picked = [];
            if (info.Resource == "services" && errs.Count == 0) picked = _alloc.Assign(next, old, errs);
            if (errs.Count > 0) throw ApiException.Invalid(info.Kind, info.Group, name, errs);
            meta["resourceVersion"] = currentRv;
            // A tracked object (it has been applied to) files what this write changed under its manager.
            if (owner is { } o && meta["managedFields"] is JsonArray)
                ManagedFields.TrackUpdate(old, next, info.Kind, o.Manager, info.ApiVersion, o.Subresource, Now());
            if (JsonNode.DeepEquals(next, old) || dryRun) return next;
            // Finalizers all gone from an object that is being deleted: the delete completes now.
            if (meta["deletionTimestamp"] is not null && (meta.ArrOrNull("finalizers")?.Count ?? 0) == 0
                && (meta.Long("deletionGracePeriodSeconds") ?? 0) == 0 && !IsGracefullyTerminating(info, next))
            {
                var (dr, drev) = await _store.DeleteAsync(key, item.Revision, info.Resource == "services" ? ServiceAllocator.KeysOf(old) : null, ct).ConfigureAwait(false);
                if (dr == WriteResult.Ok) { meta["resourceVersion"] = drev.ToString(CultureInfo.InvariantCulture); return next; }
                if (attempt < MaxRetries) continue;
                throw ApiException.Conflict(info.Ref, name);
            }
            List<string>? reserve = null, release = null;
            if (info.Resource == "services")
            {
                var now = ServiceAllocator.KeysOf(next);
                var before = ServiceAllocator.KeysOf(old);
                reserve = now.Except(before).ToList();
                release = before.Except(now).ToList();
            }
            var (result, rev, taken) = await _store.UpdateAsync(key, ObjectCodec.Encode(next), item.Revision, reserve, release, ct).ConfigureAwait(false);
            switch (result)
            {
                case WriteResult.Ok:
                    meta["resourceVersion"] = rev.ToString(CultureInfo.InvariantCulture);
                    return next;
                case WriteResult.Missing:
                    throw ApiException.NotFound(info.Ref, name);
                case WriteResult.ReservedKeyTaken when !picked.Contains(taken!):
                    _alloc.Repick(next, taken!, picked, errs);
                    throw ApiException.Invalid(info.Kind, info.Group, name, errs);
                case var _ when attempt < MaxRetries:
                    continue;
                default:
                    throw ApiException.Conflict(info.Ref, name);
            }
        }
    }

    /// <summary>A namespace waits for its spec.finalizers (the namespace controller) as well.</summary>
    private static bool IsGracefullyTerminating(ResourceInfo info, JsonObject obj) =>
        info.Resource == "namespaces" && (obj.ObjOrNull("spec").ArrOrNull("finalizers")?.Count ?? 0) > 0;

    // ---- delete -------------------------------------------------------------------------------

    private sealed record DeleteOptions(long? GracePeriodSeconds, string? PropagationPolicy, string? Uid, string? ResourceVersion, bool DryRun);

    private async Task<DeleteOptions> ReadDeleteOptionsAsync(HttpContext ctx)
    {
        var q = ctx.Request.Query;
        long? grace = q["gracePeriodSeconds"].ToString() is { Length: > 0 } g
            ? long.TryParse(g, CultureInfo.InvariantCulture, out long gl) ? gl : throw ApiException.BadRequest($"invalid gracePeriodSeconds \"{g}\"") : null;
        string? policy = q["propagationPolicy"].ToString() is { Length: > 0 } p ? p : null;
        string? uid = null, rv = null;
        bool dry = DryRun(ctx);
        if (ctx.Request.ContentLength is > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
        {
            var body = await ReadBodyAsync(ctx).ConfigureAwait(false);
            if (body.Length > 0)
            {
                JsonObject o;
                try { o = Json.ParseObject(body); }
                catch (JsonException e) { throw ApiException.BadRequest("DeleteOptions: " + e.Message); }
                // Typed as upstream decodes DeleteOptions: a member of the wrong type is a 400, never
                // ignored (an ignored precondition would let the delete go through unchecked).
                KubeProtobuf.CheckJsonTypes("DeleteOptions", "v1", o);
                grace ??= o.Long("gracePeriodSeconds");
                policy ??= o.Str("propagationPolicy");
                if (o.Bool("orphanDependents") == true) policy ??= "Orphan";
                uid = o.ObjOrNull("preconditions").Str("uid");
                rv = o.ObjOrNull("preconditions").Str("resourceVersion");
                if (o.ArrOrNull("dryRun") is { Count: > 0 } dr)
                {
                    CheckDryRun("DeleteOptions", dr.Select(d => d?.GetValue<string>()));
                    dry = true;
                }
            }
        }
        if (policy is not (null or "Orphan" or "Background" or "Foreground"))
            throw ApiException.Invalid("DeleteOptions", "", "", [FieldError.NotSupported("propagationPolicy", policy, "Background", "Foreground", "Orphan")]);
        if (grace is < 0) grace = 0;
        return new DeleteOptions(grace, policy, uid, rv, dry);
    }

    private async Task DeleteAsync(HttpContext ctx, RequestInfo req)
    {
        var opts = await ReadDeleteOptionsAsync(ctx).ConfigureAwait(false);
        var result = await DeleteObjectAsync(req.Info, req.Namespace, req.Name!, opts, ctx.RequestAborted).ConfigureAwait(false);
        await WriteObjectAsync(ctx, 200, req.Info, result).ConfigureAwait(false);
    }

    private async Task<JsonObject> DeleteObjectAsync(ResourceInfo info, string? ns, string name, DeleteOptions opts, CancellationToken ct)
    {
        string key = info.Key(ns, name);
        for (int attempt = 0; ; attempt++)
        {
            var item = await _store.GetAsync(key, ct).ConfigureAwait(false) ?? throw ApiException.NotFound(info.Ref, name);
            var obj = ObjectCodec.Decode(item.Value.Span, item.Revision);
            var meta = obj.Meta();
            if (opts.Uid is { } uid && uid != meta.Str("uid"))
                throw ApiException.Conflict(info.Ref, name, $"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.Str("uid")}");
            if (opts.ResourceVersion is { } prv && prv != meta.Str("resourceVersion"))
                throw ApiException.Conflict(info.Ref, name, $"Precondition failed: ResourceVersion in precondition: {prv}, ResourceVersion in object meta: {meta.Str("resourceVersion")}");

            long grace = 0;
            if (info.Resource == "pods")
            {
                var spec = obj.ObjOrNull("spec");
                string? phase = obj.ObjOrNull("status").Str("phase");
                grace = opts.GracePeriodSeconds ?? spec.Long("terminationGracePeriodSeconds") ?? 30;
                // Unscheduled and finished pods have nothing to stop: they go at once.
                if (string.IsNullOrEmpty(spec.Str("nodeName")) || phase is "Succeeded" or "Failed") grace = 0;
            }
            bool finalizersChanged = ApplyPropagationPolicy(meta, opts.PropagationPolicy);
            bool hasFinalizers = (meta.ArrOrNull("finalizers")?.Count ?? 0) > 0 || IsGracefullyTerminating(info, obj);
            if (grace > 0 || hasFinalizers)
            {
                // Graceful: mark the object; the kubelet (grace) or the finalizers' owners finish it.
                if (meta["deletionTimestamp"] is not null && (meta.Long("deletionGracePeriodSeconds") ?? 0) <= grace && !finalizersChanged) return obj;
                var when = _time.GetUtcNow().AddSeconds(grace);
                if (meta["deletionTimestamp"] is null || grace < (meta.Long("deletionGracePeriodSeconds") ?? 0))
                {
                    meta["deletionTimestamp"] = Json.Rfc3339(when);
                    meta["deletionGracePeriodSeconds"] = grace;
                }
                if (info.Resource == "namespaces") obj.Obj("status")["phase"] = "Terminating";
                if (opts.DryRun) return obj;
                var (r, rev, _) = await _store.UpdateAsync(key, ObjectCodec.Encode(obj), item.Revision, null, null, ct).ConfigureAwait(false);
                if (r == WriteResult.Ok) { meta["resourceVersion"] = rev.ToString(CultureInfo.InvariantCulture); return obj; }
                if (attempt < MaxRetries) continue;
                throw ApiException.Conflict(info.Ref, name);
            }
            if (opts.DryRun) return obj;
            var release = info.Resource == "services" ? ServiceAllocator.KeysOf(obj) : null;
            var (dr, drev) = await _store.DeleteAsync(key, item.Revision, release, ct).ConfigureAwait(false);
            if (dr == WriteResult.Ok)
            {
                meta["resourceVersion"] = drev.ToString(CultureInfo.InvariantCulture);
                return obj;
            }
            if (attempt >= MaxRetries) throw ApiException.Conflict(info.Ref, name);
        }
    }

    /// <summary>
    /// Orphan and Foreground deletion are finalizers the garbage collector acts on ("orphan":
    /// release the dependents first; "foregroundDeletion": delete them first); an explicit
    /// Background drops both. Returns whether metadata.finalizers changed.
    /// </summary>
    private static bool ApplyPropagationPolicy(JsonObject meta, string? policy)
    {
        if (policy is null) return false;
        var current = meta.ArrOrNull("finalizers")?.Select(f => f?.GetValue<string>() ?? "").ToList() ?? [];
        var next = current.Where(f => f is not ("orphan" or "foregroundDeletion")).ToList();
        if (policy == "Orphan") next.Add("orphan");
        else if (policy == "Foreground") next.Add("foregroundDeletion");
        if (next.SequenceEqual(current, StringComparer.Ordinal)) return false;
        if (next.Count == 0) meta.Remove("finalizers");
        else meta["finalizers"] = new JsonArray([.. next.Select(f => (JsonNode)JsonValue.Create(f))]);
        return true;
    }

    private async Task DeleteCollectionAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        var opts = await ReadDeleteOptionsAsync(ctx).ConfigureAwait(false);
        var labels = LabelSelector.Parse(ctx.Request.Query["labelSelector"]);
        var fields = FieldSelector.Parse(ctx.Request.Query["fieldSelector"], info);
        var (items, rev, _) = await _store.ListAsync(info.Prefix(req.Namespace), null, 0, 0, ctx.RequestAborted).ConfigureAwait(false);
        var deleted = new List<JsonObject>();
        foreach (var it in items)
        {
            var obj = Json.ParseObject(it.Value.Span);
            if (!new ObjectAttrs(info, obj).Matches(labels, fields)) continue;
            try
            {
                deleted.Add(await DeleteObjectAsync(info, obj.Meta().Str("namespace"), obj.Meta().Str("name")!, opts, ctx.RequestAborted).ConfigureAwait(false));
            }
            catch (ApiException e) when (e.Code == 404)
            {
            }
        }
        await WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("kind", info.ListKind);
            w.WriteString("apiVersion", info.ApiVersion);
            w.WriteStartObject("metadata");
            w.WriteString("resourceVersion", rev.ToString(CultureInfo.InvariantCulture));
            w.WriteEndObject();
            w.WriteStartArray("items");
            foreach (var d in deleted) d.WriteTo(w);
            w.WriteEndArray();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    // ---- pods/binding -------------------------------------------------------------------------

    private async Task BindAsync(HttpContext ctx, RequestInfo req)
    {
        var body = await ReadObjectAsync(ctx, req.Info).ConfigureAwait(false);
        if (body.Str("kind") is { } k && k != "Binding") throw ApiException.BadRequest($"expected a Binding, got {k}");
        string? node = body.ObjOrNull("target").Str("name");
        if (string.IsNullOrEmpty(node))
            throw ApiException.Invalid("Binding", "", req.Name!, [FieldError.Required("target.name")]);
        await UpdateObjectAsync(req.Info, req.Namespace, req.Name!, null, pod =>
        {
            if (pod.Meta()["deletionTimestamp"] is not null)
                throw ApiException.Conflict(req.Info.Ref, req.Name!, "pod is being deleted, cannot be assigned to a host");
            var spec = pod.Obj("spec");
            if (spec.Str("nodeName") is { Length: > 0 } bound)
                throw ApiException.Conflict(req.Info.Ref, req.Name!, $"pod {req.Name} is already assigned to node \"{bound}\"");
            spec["nodeName"] = node;
            return pod;
        }, false, ctx.RequestAborted).ConfigureAwait(false);
        // The scheduled condition is status: written through the status path.
        await UpdateObjectAsync(req.Info, req.Namespace, req.Name!, "status", pod =>
        {
            var conds = pod.Obj("status")["conditions"] as JsonArray ?? [];
            pod.Obj("status")["conditions"] = conds;
            foreach (var c in conds.Objects().ToList()) if (c.Str("type") == "PodScheduled") conds.Remove(c);
            conds.Add((JsonNode)new JsonObject { ["type"] = "PodScheduled", ["status"] = "True", ["lastProbeTime"] = null, ["lastTransitionTime"] = Now() });
            pod.Meta().Remove("resourceVersion");
            return pod;
        }, false, ctx.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(ctx, 201, w =>
        {
            w.WriteStartObject();
            w.WriteString("kind", "Status");
            w.WriteString("apiVersion", "v1");
            w.WriteStartObject("metadata");
            w.WriteEndObject();
            w.WriteString("status", "Success");
            w.WriteNumber("code", 201);
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }
}

/// <summary>The field manager of a write, and the subresource it went through (for managedFields).</summary>
public readonly record struct FieldOwner(string Manager, string? Subresource);
