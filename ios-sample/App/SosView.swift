import CrewSafe
import SwiftUI

/// The big SOS button: press and hold, then a few seconds to cancel before it is stored.
struct SosView: View {
    @EnvironmentObject private var model: AppModel
    @State private var pressing = false
    @State private var askReason = false

    var body: some View {
        VStack(spacing: 24) {
            TimelineView(.periodic(from: .now, by: 0.2)) { _ in
                Text(status).font(.title3).multilineTextAlignment(.center)
            }
            Circle()
                .fill(Color.red)
                .frame(width: 240, height: 240)
                .overlay(Text("SOS").font(.system(size: 64, weight: .heavy)).foregroundColor(.white))
                .gesture(DragGesture(minimumDistance: 0)
                    .onChanged { _ in
                        if !pressing { pressing = true; model.controller?.sos.press() }
                    }
                    .onEnded { _ in
                        pressing = false
                        model.controller?.sos.release()
                    })
                .accessibilityLabel("SOS, press and hold")
            if model.sos.isArming {
                Button("Cancel", role: .cancel) { model.controller?.sos.cancel() }.font(.title2)
                Button("Send now") { model.controller?.sos.raiseNow() }
            }
            if case .raised = model.sos {
                Button("Cancel the SOS…", role: .destructive) { askReason = true }
            }
        }
        .padding()
        .confirmationDialog("Why cancel? Dispatch keeps the alarm and sees the cancellation.",
                            isPresented: $askReason, titleVisibility: .visible) {
            Button("False alarm") { model.controller?.sos.cancelRaised(reason: .falseAlarm) }
            Button("Threat over") { model.controller?.sos.cancelRaised(reason: .threatOver) }
            Button("Help arrived") { model.controller?.sos.cancelRaised(reason: .helpArrived) }
            Button("Other") { model.controller?.sos.cancelRaised(reason: .other) }
        }
    }

    private var status: String {
        guard let c = model.controller else { return model.notice ?? "Not available" }
        switch model.sos {
        case .idle: return "Press and hold for \(Double(c.sos.holdMs) / 1000) s"
        case .holding: return "Keep holding…"
        case .cancelWindow(let raiseAt):
            let left = max(0, (raiseAt - model.scheduler.nowMs() + 999) / 1000)
            return "Sending in \(left) s — cancel now if by mistake"
        case .raised(let sos):
            let e = model.records.records.first { $0.id == sos.id }
            return "SOS ACTIVE: \(e.map { "\($0.state)" } ?? "queued")" + (e?.dispatchStatus.map { ", dispatch: \($0)" } ?? "")
        case .failed(let reason): return "Could not raise the SOS: \(reason)"
        }
    }
}
