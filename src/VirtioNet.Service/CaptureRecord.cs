namespace VirtioNet.Service;

/// <summary>One captured frame: a copy in a pooled buffer, on its way from a pump to a capture client.</summary>
/// <param name="Buffer">Rented from <see cref="System.Buffers.ArrayPool{T}.Shared"/>; returned by whoever takes the record last.</param>
/// <param name="Length">The frame's length in <paramref name="Buffer"/>.</param>
/// <param name="Queue">The queue pair it went through.</param>
/// <param name="Direction">Which way.</param>
/// <param name="TimestampMicroseconds">When the pump saw it, microseconds since the Unix epoch.</param>
internal readonly record struct CaptureRecord(byte[] Buffer, int Length, int Queue, CaptureDirection Direction, long TimestampMicroseconds);
