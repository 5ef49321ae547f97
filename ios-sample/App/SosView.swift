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
                // "Sent — waiting for dispatch", "Help is on the way — acknowledged by … at
                // 14:05" and the dispatcher's message, "Resolved by dispatch"; the countdowns.
                Text(status).font(.title3).multilineTextAlignment(.center).foregroundColor(statusColor)
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
            if model.sos.raisedSos != nil && !model.sos.isFinished {
                Button("Cancel the SOS…", role: .destructive) { askReason = true }
            }
            if model.sos.isFinished {
                Button("Done") { model.controller?.sos.dismiss() }
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

    /// The controller re-reads the raised alarm on every record change (delivered,
    /// acknowledged, the dispatcher's message, resolved) and publishes a new phase.
    private var status: String {
        guard let c = model.controller else { return model.notice ?? "Not available" }
        if let sos = model.sos.raisedSos { return sosStatus(sos).text }
        return c.sos.statusText()
    }

    private var statusColor: Color {
        guard let sos = model.sos.raisedSos else { return .primary }
        if sosStatus(sos).helpOnTheWay { return .green }
        return sos.isFinished ? .secondary : .red
    }
}
