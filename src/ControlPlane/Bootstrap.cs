using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Api;

namespace NodeAgent.ControlPlane;

/// <summary>
/// What kube-apiserver creates for itself on start: the system namespaces and the "kubernetes"
/// Service (first ClusterIP, port 443) with Endpoints and an EndpointSlice pointing at this server. Idempotent, and
/// safe with several control-plane processes starting at once.
/// </summary>
public static class Bootstrap
{
    public static async Task RunAsync(ApiServer api, string advertiseAddress, int port, CancellationToken ct)
    {
        var ns = api.Resources.Get("", "namespaces");
        foreach (var name in (string[])["default", "kube-system", "kube-public", "kube-node-lease"])
            await CreateIfMissingAsync(api, ns, null, new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = name } }, ct).ConfigureAwait(false);
        var svc = api.Resources.Get("", "services");
        await CreateIfMissingAsync(api, svc, "default", new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Service",
            ["metadata"] = new JsonObject { ["name"] = "kubernetes", ["labels"] = new JsonObject { ["component"] = "apiserver", ["provider"] = "kubernetes" } },
            ["spec"] = new JsonObject
            {
                ["type"] = "ClusterIP", ["clusterIP"] = api.Allocator.KubernetesServiceIp,
                ["ports"] = new JsonArray(new JsonObject { ["name"] = "https", ["port"] = 443, ["protocol"] = "TCP", ["targetPort"] = port }),
            },
        }, ct).ConfigureAwait(false);
        var ep = api.Resources.Get("", "endpoints");
        var endpoints = new JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Endpoints",
            ["metadata"] = new JsonObject { ["name"] = "kubernetes", ["namespace"] = "default" },
            ["subsets"] = new JsonArray(new JsonObject
            {
                ["addresses"] = new JsonArray(new JsonObject { ["ip"] = advertiseAddress }),
                ["ports"] = new JsonArray(new JsonObject { ["name"] = "https", ["port"] = port, ["protocol"] = "TCP" }),
            }),
        };
        if (!await CreateIfMissingAsync(api, ep, "default", (JsonObject)endpoints.DeepClone(), ct).ConfigureAwait(false))
            await api.UpdateObjectAsync(ep, "default", "kubernetes", null, cur =>
            {
                cur["subsets"] = endpoints["subsets"]!.DeepClone();
                return cur;
            }, false, ct).ConfigureAwait(false);

        // The same as an EndpointSlice, which is what service proxies read.
        var es = api.Resources.Get("discovery.k8s.io", "endpointslices");
        var slice = new JsonObject
        {
            ["apiVersion"] = "discovery.k8s.io/v1", ["kind"] = "EndpointSlice",
            ["metadata"] = new JsonObject { ["name"] = "kubernetes", ["namespace"] = "default", ["labels"] = new JsonObject { ["kubernetes.io/service-name"] = "kubernetes" } },
            ["addressType"] = System.Net.IPAddress.TryParse(advertiseAddress, out var a) && a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4",
            ["endpoints"] = new JsonArray(new JsonObject { ["addresses"] = new JsonArray(advertiseAddress), ["conditions"] = new JsonObject { ["ready"] = true } }),
            ["ports"] = new JsonArray(new JsonObject { ["name"] = "https", ["port"] = port, ["protocol"] = "TCP" }),
        };
        if (!await CreateIfMissingAsync(api, es, "default", (JsonObject)slice.DeepClone(), ct).ConfigureAwait(false))
            await api.UpdateObjectAsync(es, "default", "kubernetes", null, cur =>
            {
                cur["addressType"] = slice["addressType"]!.DeepClone();
                cur["endpoints"] = slice["endpoints"]!.DeepClone();
                cur["ports"] = slice["ports"]!.DeepClone();
                return cur;
            }, false, ct).ConfigureAwait(false);
    }

    private static async Task<bool> CreateIfMissingAsync(ApiServer api, Registry.ResourceInfo info, string? ns, JsonObject obj, CancellationToken ct)
    {
        try
        {
            await api.CreateObjectAsync(info, ns, obj, false, ct).ConfigureAwait(false);
            return true;
        }
        catch (ApiException e) when (e.Code == 409)
        {
            return false;
        }
    }
}
