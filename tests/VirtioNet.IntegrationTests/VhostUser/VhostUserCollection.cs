using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// Tests that start dpdk-testpmd or count this process's descriptors run one at a time: testpmd takes both cores of
/// the machine, and a descriptor opened by a parallel test would read as a leak.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class VhostUserCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "vhost-user (not parallel)";
}
