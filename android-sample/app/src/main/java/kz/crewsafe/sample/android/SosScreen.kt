package kz.crewsafe.sample.android

import android.annotation.SuppressLint
import android.app.Activity
import android.app.AlertDialog
import android.graphics.Color
import android.graphics.drawable.GradientDrawable
import android.os.Handler
import android.os.Looper
import android.view.Gravity
import android.view.MotionEvent
import android.widget.LinearLayout
import kz.crewsafe.CancelReason
import kz.crewsafe.sample.core.CrewSafeController
import kz.crewsafe.sample.core.SosPhase

/** The big SOS button: press and hold, then a few seconds to cancel before it is stored. */
@SuppressLint("ClickableViewAccessibility")
class SosScreen(activity: Activity, private val c: CrewSafeController) : Screen(activity) {
    private val status = activity.text(sizeSp = 20f)
    private val cancel = activity.button("Cancel") { c.sos.cancel() }
    private val sendNow = activity.button("Send now") { c.sos.raiseNow() }
    private val cancelRaised = activity.button("Cancel the SOS…") { askReason() }
    private val dismiss = activity.button("Done") { c.sos.dismiss() }
    private val ticker = Handler(Looper.getMainLooper())
    private val tick = object : Runnable {
        override fun run() {
            render()
            ticker.postDelayed(this, 200)
        }
    }

    private val sosButton = activity.text("SOS", 56f).apply {
        gravity = Gravity.CENTER
        setTextColor(Color.WHITE)
        background = GradientDrawable().apply { shape = GradientDrawable.OVAL; setColor(Color.rgb(200, 0, 0)) }
        contentDescription = "SOS: press and hold"
        setOnTouchListener { _, e ->
            when (e.actionMasked) {
                MotionEvent.ACTION_DOWN -> c.sos.press()
                MotionEvent.ACTION_UP, MotionEvent.ACTION_CANCEL -> c.sos.release()
            }
            true
        }
    }

    override val view = activity.column(
        sosButton.also { it.layoutParams = LinearLayout.LayoutParams(600, 600).apply { gravity = Gravity.CENTER } },
        status, cancel, sendNow, cancelRaised, dismiss,
    )

    override fun attach() {
        // The controller re-reads the raised alarm on every record change (delivered,
        // acknowledged, the dispatcher's message, resolved) and publishes a new phase.
        c.sos.listener = { ui(::render) }
        ticker.post(tick)
    }

    override fun detach() {
        c.sos.listener = null
        ticker.removeCallbacks(tick)
    }

    private fun render() {
        val phase = c.sos.phase
        // "Sent — waiting for dispatch", "Help is on the way — acknowledged by … at 14:05"
        // and the dispatcher's message, "Resolved by dispatch"; the countdowns while arming.
        status.text = c.sos.statusText()
        val raised = phase as? SosPhase.Raised
        status.setTextColor(
            when {
                raised?.status()?.helpOnTheWay == true -> Color.rgb(0, 120, 0)
                phase is SosPhase.Raised && !phase.finished -> Color.rgb(200, 0, 0)
                else -> Color.DKGRAY
            },
        )
        val arming = phase is SosPhase.Holding || phase is SosPhase.CancelWindow
        cancel.isEnabled = arming
        sendNow.isEnabled = phase is SosPhase.CancelWindow
        cancelRaised.isEnabled = c.sos.canCancelRaised
        dismiss.isEnabled = raised?.finished == true
    }

    private fun askReason() {
        val reasons = CancelReason.entries
        AlertDialog.Builder(activity)
            .setTitle("Why cancel? Dispatch keeps the alarm and sees the cancellation.")
            .setItems(reasons.map { it.name.lowercase().replace('_', ' ') }.toTypedArray()) { _, i ->
                c.sos.cancelRaised(reasons[i])
            }
            .show()
    }
}
