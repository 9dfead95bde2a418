import Foundation
import SixtyScheduler
import SixtyProcess
import Testing

@testable import SixtyExecution

@Suite struct MasterConnectionTests {
  @Test func aMasterAuthenticatesOnceAndIsStoppedAsAMaster() {
    var master = MasterConnection(fused: false)
    #expect(master.state == .connecting && master.isConnecting && !master.isOpen)
    let seen = master.socketSeen()
    #expect(seen)
    #expect(master.state == .up && master.isOpen && !master.isConnecting)
    let seenAgain = master.socketSeen()
    #expect(!seenAgain)
    let stop = master.close()
    #expect(stop == .master)
    #expect(master.state == .closing && !master.isOpen)
    let stopAgain = master.close()
    #expect(stopAgain == .none)
    master.exited()
    #expect(master.state == .closed)
    let (seenClosed, stopClosed) = (master.socketSeen(), master.close())
    #expect(!seenClosed && stopClosed == .none)
  }

  @Test func aFusedMasterRunsItsTaskOnceAuthenticated() {
    var master = MasterConnection(fused: true)
    let seen = master.socketSeen()
    #expect(seen)
    #expect(master.state == .fusedTaskRunning && master.isOpen)
    let stop = master.close()
    #expect(stop == .master)
  }

  @Test func aClientStillConnectingIsStoppedAsAClient() {
    var master = MasterConnection(fused: false)
    let stop = master.close()
    #expect(stop == .client)
    #expect(master.state == .closing)
    let seen = master.socketSeen()
    #expect(!seen, "a socket seen after closing is not an authentication")
  }

  @Test func aMasterThatExitsWhileConnectingIsClosed() {
    var master = MasterConnection(fused: true)
    master.exited()
    let (seen, stop) = (master.socketSeen(), master.close())
    #expect(master.state == .closed && !seen && stop == .none)
  }

  @Test func aConnectAttemptIsReportedOnce() {
    let attempt = ConnectAttempt { _ in }
    #expect(attempt.finish())
    #expect(!attempt.finish())
  }

  @Test func aFusedTaskDeliversWhicheverComesSecond() {
    let capture = TaskCapture(
      host: "a", task: 0, status: 0, stdout: CappedBuffer(cap: 1), stderr: CappedBuffer(cap: 1),
      started: Date(timeIntervalSince1970: 0), ended: Date(timeIntervalSince1970: 1))
    let early = FusedTask()
    #expect(early.finish(.exited(0), capture) == nil)
    #expect(early.attach { _ in }?.0 == .exited(0))
    let late = FusedTask()
    #expect(late.attach { _ in } == nil)
    #expect(late.finish(.exited(2), capture) != nil)
  }
}

@Suite struct SSHLogTests {
  let target = ExecutionTarget(address: "10.0.0.5", port: 2222, user: "ops", tasks: [])

  @Test func aFailureIsTheLogsLastLine() {
    let log = "debug1: x\r\nssh: connect to host 10.0.0.5 port 2222: Connection refused\r\n\r\n"
    #expect(
      SSHLog.failure(
        host: "web", target: target, status: 255, log: log, hostKeyPolicy: .strict, knownHostsFile: "/k")
        == "cannot connect to ops@10.0.0.5:2222: ssh: connect to host 10.0.0.5 port 2222: Connection refused")
    #expect(
      SSHLog.failure(
        host: "web", target: target, status: 255, log: "", hostKeyPolicy: .off, knownHostsFile: "/k")
        == "cannot connect to ops@10.0.0.5:2222: ssh exited with status 255")
  }

  @Test func aChangedHostKeyIsExplained() {
    let log = "@@@\nWARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\nHost key verification failed.\n"
    let message = SSHLog.failure(
      host: "web", target: target, status: 255, log: log, hostKeyPolicy: .acceptNew, knownHostsFile: "/k/h")
    #expect(
      message.hasPrefix("the host key of web (10.0.0.5:2222) is not the one recorded in /k/h on first use"))
    #expect(message.hasSuffix("ssh-keygen -R '[10.0.0.5]:2222' -f '/k/h'"))
  }

  @Test func aFusedMasterAuthenticatedUnlessSSHItselfFailed() {
    #expect(SSHLog.authenticated(status: 3, log: ""))
    #expect(!SSHLog.authenticated(status: 255, log: "Connection refused\n"))
    #expect(SSHLog.authenticated(status: 255, log: "Authenticated to 10.0.0.5 ([10.0.0.5]:22).\r\n"))
    #expect(SSHLog.authenticated(status: 255, log: "x\nAuthenticated to h\n"))
  }

  @Test func okCodesPass() {
    #expect(SSHLog.outcome(status: 3, okCodes: [0, 3]) == .exited(0))
    #expect(SSHLog.outcome(status: 0, okCodes: [3]) == .exited(1))
    #expect(SSHLog.outcome(status: 2, okCodes: [0]) == .exited(2))
  }
}
