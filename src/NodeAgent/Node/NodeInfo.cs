using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using NodeAgent.Options;

namespace NodeAgent.Node;

/// <summary>What this host is, as a Node reports it: capacity, allocatable, addresses, nodeInfo.</summary>
public sealed class NodeInfoSource(AgentConfiguration config, AgentHealth health, IReadOnlyList<string> nodeIps)
{
    public const string KubeletVersion = "v1.32.0";

    public string NodeName => config.NodeName;

    // Facts fixed for the life of the process (boot, machine, kernel, OS, memory): read once.
    private readonly Lazy<(string MachineId, string SystemUuid, string BootId, string Kernel, string OsImage, long MemKi)> _fixed =
        new(() => (ReadFirst("/etc/machine-id"), ReadFirst("/sys/class/dmi/id/product_uuid").ToLowerInvariant(), ReadFirst("/proc/sys/kernel/random/boot_id"),
                   ReadFirst("/proc/sys/kernel/osrelease"), OsImage(), MemTotalKi()));
    /// <summary>The InternalIP addresses (--node-ip, else the host's primary IPv4): one per family, primary first.</summary>
    public IReadOnlyList<string> InternalIPs => nodeIps;

    public static string Arch => RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => "amd64",
        Architecture.Arm64 => "arm64",
        var a => a.ToString().ToLowerInvariant(),
    };

    private static string ReadFirst(string path)
    {
        try { return File.ReadAllText(path).Trim(); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }

    private static string OsImage()
    {
        try
        {
            foreach (var line in File.ReadLines("/etc/os-release"))
                if (line.StartsWith("PRETTY_NAME=", StringComparison.Ordinal)) return line[12..].Trim('"');
        }
        catch (IOException) { }
        return "Linux";
    }

    private static long MemTotalKi()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                    return long.Parse(line[9..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        return 0;
    }

    private long StorageKi()
    {
        try { return new DriveInfo(config.RootDir).TotalSize / 1024; }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { return 0; }
    }

    /// <summary>Labels the kubelet sets on its Node, plus --node-labels.</summary>
    public JsonObject Labels()
    {
        var l = new JsonObject
        {
            ["beta.kubernetes.io/arch"] = Arch, ["beta.kubernetes.io/os"] = "linux",
            ["kubernetes.io/arch"] = Arch, ["kubernetes.io/hostname"] = NodeName, ["kubernetes.io/os"] = "linux",
        };
        foreach (var pair in (config.NodeLabels ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = pair.IndexOf('=');
            l[pair[..eq]] = pair[(eq + 1)..];
        }
        return l;
    }

    public JsonArray Taints()
    {
        var taints = new JsonArray();
        foreach (var t in (config.RegisterWithTaints ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int colon = t.LastIndexOf(':');
            string kv = t[..colon];
            int eq = kv.IndexOf('=');
            var taint = new JsonObject { ["key"] = eq < 0 ? kv : kv[..eq], ["effect"] = t[(colon + 1)..] };
            if (eq >= 0) taint["value"] = kv[(eq + 1)..];
            taints.Add((JsonNode)taint);
        }
        return taints;
    }

    /// <summary>The status fields that describe the host (not the conditions).</summary>
    public JsonObject Status()
    {
        var f = _fixed.Value;
        long memKi = f.MemKi, storageKi = StorageKi();
        string cpu = Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var capacity = new JsonObject
        {
            ["cpu"] = cpu, ["ephemeral-storage"] = $"{storageKi}Ki", ["hugepages-1Gi"] = "0", ["hugepages-2Mi"] = "0",
            ["memory"] = $"{memKi}Ki", ["pods"] = config.MaxPods.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        // Allocatable: capacity minus the kubelet's default hard eviction thresholds
        // (memory.available<100Mi, nodefs.available<10%); no kube/system reservations are configured.
        var allocatable = new JsonObject
        {
            ["cpu"] = cpu, ["ephemeral-storage"] = (storageKi * 1024 * 9 / 10).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["hugepages-1Gi"] = "0", ["hugepages-2Mi"] = "0", ["memory"] = $"{Math.Max(0, memKi - 100 * 1024)}Ki",
            ["pods"] = config.MaxPods.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        var addresses = new JsonArray();
        foreach (var ip in nodeIps) addresses.Add((JsonNode)new JsonObject { ["type"] = "InternalIP", ["address"] = ip });
        addresses.Add((JsonNode)new JsonObject { ["type"] = "Hostname", ["address"] = NodeName });
        return new JsonObject
        {
            ["capacity"] = capacity,
            ["allocatable"] = allocatable,
            ["addresses"] = addresses,
            ["daemonEndpoints"] = new JsonObject { ["kubeletEndpoint"] = new JsonObject { ["Port"] = config.Port } },
            ["nodeInfo"] = new JsonObject
            {
                ["machineID"] = f.MachineId,
                ["systemUUID"] = f.SystemUuid,
                ["bootID"] = f.BootId,
                ["kernelVersion"] = f.Kernel,
                ["osImage"] = f.OsImage,
                ["containerRuntimeVersion"] = health.RuntimeVersion ?? "",
                ["kubeletVersion"] = KubeletVersion,
                ["kubeProxyVersion"] = "",
                ["operatingSystem"] = "linux",
                ["architecture"] = Arch,
            },
        };
    }
}
