// The control plane targets Linux servers only (systemd, etcd, the AOT build).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
