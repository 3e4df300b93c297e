// The agent drives Linux kernel interfaces (cgroups, mounts, netfilter): Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
