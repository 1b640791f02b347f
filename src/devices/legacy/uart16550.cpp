#include "devices/legacy/uart16550.hpp"

#include <utility>

#include "base/error.hpp"

namespace strata {
namespace {

// IER bits (PC16550D §8.6).
constexpr uint8_t kIerReceivedData = 0x01;  // ERBFI
constexpr uint8_t kIerThrEmpty = 0x02;      // ETBEI
constexpr uint8_t kIerLineStatus = 0x04;    // ELSI
constexpr uint8_t kIerModemStatus = 0x08;   // EDSSI
constexpr uint8_t kIerMask = 0x0f;          // the 16550 has no more bits; Linux checks this

// IIR values, highest priority first (PC16550D Table IV).
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirReceivedData = 0x04;
constexpr uint8_t kIirCharTimeout = 0x0c;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirModemStatus = 0x00;
constexpr uint8_t kIirFifosEnabled = 0xc0;

// FCR bits (§8.4).
constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kFcrTriggerMask = 0xc0;

constexpr uint8_t kLcrDlab = 0x80;

// MCR bits (§8.7).
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

// LSR bits (§8.8).
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrErrorBits = 0x1e;  // OE, PE, FE, BI
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTransmitterEmpty = 0x40;
constexpr uint8_t kLsrFifoError = 0x80;

// MSR bits (§8.9).
constexpr uint8_t kMsrDeltaCts = 0x01, kMsrDeltaDsr = 0x02, kMsrTrailingRi = 0x04, kMsrDeltaDcd = 0x08;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr uint8_t kMsrDeltas = 0x0f;

}  // namespace

Uart16550::Uart16550(IrqLine& irq, Output output) : irq_(irq), output_(std::move(output)) {
    // A terminal is attached: clear to send, data set ready, carrier detect.
    msr_ = kMsrCts | kMsrDsr | kMsrDcd;
}

void Uart16550::read(uint64_t offset, std::span<uint8_t> data) {
    std::function<void()> notify;
    {
        std::lock_guard lock(mutex_);
        for (size_t i = 0; i < data.size(); ++i) {
            uint64_t reg = offset + i;
            data[i] = reg < kWindowSize ? read_register(static_cast<uint8_t>(reg)) : uint8_t{0xff};
        }
        update_irq();
        // The host stopped sending when the backlog was full; half of it free again, it may go on.
        if (host_waiting_ && backlog_.size() <= kBacklogLimit / 2) {
            host_waiting_ = false;
            notify = room_notifier_;
        }
    }
    if (notify) notify();
}

void Uart16550::write(uint64_t offset, std::span<const uint8_t> data) {
    std::optional<uint8_t> transmitted;
    std::unique_lock lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t reg = offset + i;
        if (reg < kWindowSize) write_register(static_cast<uint8_t>(reg), data[i], transmitted);
    }
    update_irq();
    if (!transmitted || !output_) return;
    // Hand over to the output lock so concurrent writers keep their order, then let the console
    // (which may block, or feed input back) run without the register lock.
    std::lock_guard output_lock(output_mutex_);
    lock.unlock();
    output_(std::span(&*transmitted, 1));
}

size_t Uart16550::receive(std::span<const uint8_t> bytes) {
    std::lock_guard lock(mutex_);
    size_t room = kBacklogLimit - std::min(backlog_.size(), kBacklogLimit);
    size_t taken = std::min(room, bytes.size());
    backlog_.insert(backlog_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(taken));
    if (taken < bytes.size()) host_waiting_ = true;
    refill_rx();
    update_irq();
    return taken;
}

void Uart16550::set_room_notifier(std::function<void()> notifier) {
    std::lock_guard lock(mutex_);
    room_notifier_ = std::move(notifier);
}

uint8_t Uart16550::read_register(uint8_t offset) {
    bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (static_cast<Reg>(offset)) {
        case Reg::Data: {
            if (dlab) return static_cast<uint8_t>(divisor_);
            if (rx_fifo_.empty()) return 0;
            uint8_t byte = rx_fifo_.front();
            rx_fifo_.pop_front();
            refill_rx();
            return byte;
        }
        case Reg::IntEnable: return dlab ? static_cast<uint8_t>(divisor_ >> 8) : ier_;
        case Reg::IntIdent: {
            uint8_t id = interrupt_identification();
            // Reading IIR acknowledges a THRE interrupt, but only when it is the one reported
            // (§8.3: "reading the IIR (if source of interrupt)").
            if (id == kIirThrEmpty) thr_interrupt_ = false;
            return static_cast<uint8_t>(id | ((fcr_ & kFcrEnable) ? kIirFifosEnabled : 0));
        }
        case Reg::LineControl: return lcr_;
        case Reg::ModemControl: return mcr_;
        case Reg::LineStatus: {
            uint8_t value = static_cast<uint8_t>(lsr_errors_ | kLsrThrEmpty | kLsrTransmitterEmpty);
            if (!rx_fifo_.empty()) value |= kLsrDataReady;
            if ((fcr_ & kFcrEnable) && lsr_errors_ != 0) value |= kLsrFifoError;
            lsr_errors_ = 0;  // the error bits clear on read (§8.8)
            return value;
        }
        case Reg::ModemStatus: {
            uint8_t value = msr_;
            msr_ &= static_cast<uint8_t>(~kMsrDeltas);
            return value;
        }
        case Reg::Scratch: return scr_;
    }
    return 0xff;
}

void Uart16550::write_register(uint8_t offset, uint8_t value, std::optional<uint8_t>& transmitted) {
    bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (static_cast<Reg>(offset)) {
        case Reg::Data:
            if (dlab) {
                divisor_ = static_cast<uint16_t>((divisor_ & 0xff00) | value);
                return;
            }
            // The byte leaves at once, so THR is empty again immediately; drop the THRE
            // interrupt and re-raise it so the guest sees a fresh edge, as after a real
            // transmission.
            thr_interrupt_ = false;
            update_irq();
            if (mcr_ & kMcrLoop)
                push_rx(value);
            else
                transmitted = value;
            thr_interrupt_ = true;
            return;
        case Reg::IntEnable: {
            if (dlab) {
                divisor_ = static_cast<uint16_t>((divisor_ & 0x00ff) | (value << 8));
                return;
            }
            uint8_t changed = static_cast<uint8_t>((ier_ ^ value) & kIerThrEmpty);
            ier_ = static_cast<uint8_t>(value & kIerMask);
            // Enabling ETBEI while THR is empty raises the THRE interrupt at once (§8.3);
            // Linux's startup probes exactly this.
            if (changed) thr_interrupt_ = (ier_ & kIerThrEmpty) != 0;
            return;
        }
        case Reg::IntIdent: {
            bool was_enabled = (fcr_ & kFcrEnable) != 0;
            bool enable = (value & kFcrEnable) != 0;
            // Changing FCR0 clears both FIFOs; with FCR0 clear the other bits are not
            // programmed (§8.4).
            if (was_enabled != enable || (value & kFcrClearRx)) rx_fifo_.clear();
            fcr_ = enable ? static_cast<uint8_t>(value & (kFcrEnable | kFcrTriggerMask)) : uint8_t{0};
            refill_rx();
            return;
        }
        case Reg::LineControl: lcr_ = value; return;
        case Reg::ModemControl: {
            mcr_ = static_cast<uint8_t>(value & kMcrMask);
            if (mcr_ & kMcrLoop) {
                // Loopback wiring (§8.7): RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
                uint8_t status = 0;
                if (mcr_ & kMcrRts) status |= kMsrCts;
                if (mcr_ & kMcrDtr) status |= kMsrDsr;
                if (mcr_ & kMcrOut1) status |= kMsrRi;
                if (mcr_ & kMcrOut2) status |= kMsrDcd;
                set_modem_inputs(status);
            } else {
                set_modem_inputs(kMsrCts | kMsrDsr | kMsrDcd);
            }
            refill_rx();
            return;
        }
        case Reg::LineStatus:
        case Reg::ModemStatus: return;  // read-only (factory test use only)
        case Reg::Scratch: scr_ = value; return;
    }
}

uint8_t Uart16550::interrupt_identification() const {
    if ((ier_ & kIerLineStatus) && (lsr_errors_ & kLsrErrorBits)) return kIirLineStatus;
    if ((ier_ & kIerReceivedData) && !rx_fifo_.empty()) {
        if ((fcr_ & kFcrEnable) && rx_fifo_.size() < rx_trigger_level()) return kIirCharTimeout;
        return kIirReceivedData;
    }
    if ((ier_ & kIerThrEmpty) && thr_interrupt_) return kIirThrEmpty;
    if ((ier_ & kIerModemStatus) && (msr_ & kMsrDeltas)) return kIirModemStatus;
    return kIirNone;
}

size_t Uart16550::rx_capacity() const { return (fcr_ & kFcrEnable) ? kFifoSize : 1; }

size_t Uart16550::rx_trigger_level() const {
    constexpr size_t kLevels[4] = {1, 4, 8, 14};
    return kLevels[(fcr_ & kFcrTriggerMask) >> 6];
}

bool Uart16550::receiver_ready() const {
    // Hardware flow control as a terminal server does it: the host sends while the guest asserts
    // DTR and RTS, and never into the loopback wiring. Bytes offered earlier wait in the backlog,
    // so that the FIFO resets of a driver's set-up (Linux raises DTR and RTS only after its last
    // one) lose none of them.
    return (mcr_ & (kMcrDtr | kMcrRts)) == (kMcrDtr | kMcrRts) && !(mcr_ & kMcrLoop);
}

void Uart16550::refill_rx() {
    if (!receiver_ready()) return;
    while (rx_fifo_.size() < rx_capacity() && !backlog_.empty()) {
        rx_fifo_.push_back(backlog_.front());
        backlog_.pop_front();
    }
}

void Uart16550::push_rx(uint8_t byte) {
    if (rx_fifo_.size() >= rx_capacity()) {
        // A full FIFO keeps its bytes and loses the new one; a full holding register (16450
        // mode) is overwritten (§8.8, OE).
        lsr_errors_ |= kLsrOverrun;
        if (!(fcr_ & kFcrEnable)) rx_fifo_.back() = byte;
        return;
    }
    rx_fifo_.push_back(byte);
}

void Uart16550::set_modem_inputs(uint8_t status) {
    uint8_t old = msr_;
    uint8_t deltas = static_cast<uint8_t>(old & kMsrDeltas);
    uint8_t changed = static_cast<uint8_t>(old ^ status);
    if (changed & kMsrCts) deltas |= kMsrDeltaCts;
    if (changed & kMsrDsr) deltas |= kMsrDeltaDsr;
    if ((old & kMsrRi) && !(status & kMsrRi)) deltas |= kMsrTrailingRi;
    if (changed & kMsrDcd) deltas |= kMsrDeltaDcd;
    msr_ = static_cast<uint8_t>((status & 0xf0) | deltas);
}

void Uart16550::State::encode(StateWriter& out) const {
    for (uint8_t b : {ier, lcr, mcr, scr, fcr, lsr_errors, msr}) out.u8(b);
    out.u16(divisor);
    out.boolean(thr_interrupt);
    out.blob(rx_fifo);
    out.blob(backlog);
}

Uart16550::State Uart16550::State::decode(StateReader& in) {
    State s;
    for (auto [field, name] : {std::pair{&s.ier, "IER"}, {&s.lcr, "LCR"}, {&s.mcr, "MCR"}, {&s.scr, "SCR"},
                               {&s.fcr, "FCR"}, {&s.lsr_errors, "LSR errors"}, {&s.msr, "MSR"}})
        *field = in.u8(name);
    s.divisor = in.u16("divisor");
    s.thr_interrupt = in.boolean("THRE interrupt");
    s.rx_fifo = in.blob(kFifoSize, "RX FIFO");
    s.backlog = in.blob(kBacklogLimit, "input backlog");
    return s;
}

Uart16550::State Uart16550::state() const {
    std::lock_guard lock(mutex_);
    return {.ier = ier_,
            .lcr = lcr_,
            .mcr = mcr_,
            .scr = scr_,
            .fcr = fcr_,
            .lsr_errors = lsr_errors_,
            .msr = msr_,
            .divisor = divisor_,
            .thr_interrupt = thr_interrupt_,
            .rx_fifo = {rx_fifo_.begin(), rx_fifo_.end()},
            .backlog = {backlog_.begin(), backlog_.end()}};
}

Result<void> Uart16550::set_state(const State& s) {
    if (s.ier & ~kIerMask) return fail("IER {:#04x} has bits a 16550 does not have", s.ier);
    if (s.mcr & ~kMcrMask) return fail("MCR {:#04x} has bits a 16550 does not have", s.mcr);
    if (s.fcr & ~(kFcrEnable | kFcrTriggerMask) || ((s.fcr & kFcrEnable) == 0 && s.fcr != 0))
        return fail("FCR {:#04x} is not what the UART keeps of one", s.fcr);
    if (s.lsr_errors & ~kLsrErrorBits) return fail("LSR error bits {:#04x} are not error bits", s.lsr_errors);
    size_t capacity = (s.fcr & kFcrEnable) ? kFifoSize : 1;
    if (s.rx_fifo.size() > capacity)
        return fail("{} received bytes do not fit its {}-byte receiver", s.rx_fifo.size(), capacity);
    if (s.backlog.size() > kBacklogLimit) return fail("an input backlog of {} bytes is over its limit", s.backlog.size());
    std::lock_guard lock(mutex_);
    ier_ = s.ier;
    lcr_ = s.lcr;
    mcr_ = s.mcr;
    scr_ = s.scr;
    fcr_ = s.fcr;
    lsr_errors_ = s.lsr_errors;
    msr_ = s.msr;
    divisor_ = s.divisor;
    thr_interrupt_ = s.thr_interrupt;
    rx_fifo_.assign(s.rx_fifo.begin(), s.rx_fifo.end());
    backlog_.assign(s.backlog.begin(), s.backlog.end());
    host_waiting_ = false;
    // The interrupt controllers were restored with this line's level; driving it again changes
    // nothing there and keeps irq_level_ true to it.
    irq_level_ = interrupt_identification() != kIirNone;
    irq_.set_level(irq_level_);
    return {};
}

void Uart16550::update_irq() {
    bool level = interrupt_identification() != kIirNone;
    if (level == irq_level_) return;
    irq_level_ = level;
    irq_.set_level(level);
}

}  // namespace strata
