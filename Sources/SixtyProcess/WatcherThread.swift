import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The thread that watches one child: a plain detached pthread with a small stack. It only polls,
/// reads and waits, so 256 KiB is plenty; and glibc keeps up to 40 MiB of exited threads'
/// stacks for reuse, so at this size a run with a hundred hosts at work maps no new stacks once
/// its first hosts are done (with the default 8 MiB stack, every exit unmapped one).
enum WatcherThread {
  static let stackSize = 256 * 1024

  static func start(_ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, stackSize)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let result = pthread_create(
      &thread, &attributes,
      { argument in
        Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
      }, box)
    if result != 0 {
      // Out of threads: watch from a Foundation thread rather than lose the child's exit.
      let body = Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body
      Thread.detachNewThread { body() }
    }
  }

  final class Box {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }
}
