namespace NodeAgent.Pods;

/// <summary>
/// What the last whole-node relist saw. A pod the runtime cannot hold yet need not be read from it
/// before its first sync: that saves a brand-new pod's worker two filtered list calls.
/// </summary>
public interface IRuntimeListing
{
    /// <summary>
    /// True when a relist has completed and saw no sandbox and no container labelled with the UID.
    /// <paramref name="listedAt"/> is when that relist's listing began (a <see cref="TimeProvider"/>
    /// timestamp): anything created for the pod before then would have been seen.
    /// </summary>
    bool SawNothingOf(string uid, out long listedAt);
}
