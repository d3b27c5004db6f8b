namespace VirtioNet.Tests.Fakes;

/// <summary>Runs an action on Dispose: tests that must stop a software device's responder before the driver is disposed.</summary>
internal sealed class DisposeAction(Action action) : IDisposable
{
    public void Dispose() => action();
}
