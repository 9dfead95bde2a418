// Module InstanceConnect.
