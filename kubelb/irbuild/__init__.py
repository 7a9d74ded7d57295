"""Pure translation of KubeLB API objects (plus port and address assignments) into the IR."""
