using Xunit;

namespace VirtioNet.IntegrationTests.Qemu;

/// <summary>Tests that count processes and /dev/shm files, run with no other test in parallel.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class QemuLifecycleCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "QEMU lifecycle (not parallel)";
}
